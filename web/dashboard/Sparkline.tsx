import { memo } from "react";

const WIDTH = 240;
const HEIGHT = 56;
const PAD = 3;

/**
 * Events per second as an inline SVG: one point per 1-second bucket, oldest left, the current
 * (still filling) second at the right edge.
 */
export const Sparkline = memo(function Sparkline({ values }: { values: number[] }) {
  const peak = values.reduce((max, v) => (v > max ? v : max), 0);
  const scale = peak > 0 ? (HEIGHT - PAD * 2) / peak : 0;
  const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
  const points = values.map((v, i) => {
    const x = i * step;
    const y = HEIGHT - PAD - v * scale;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = points.length > 0 ? `M${points.join(" L")}` : "";
  const area = points.length > 0 ? `${line} L${WIDTH},${HEIGHT} L0,${HEIGHT} Z` : "";
  const last = values[values.length - 1] ?? 0;

  return (
    <svg
      data-testid="sparkline"
      className="sparkline"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={`Events per second over the last ${values.length} seconds; peak ${peak}, now ${last}`}
    >
      <line className="sparkline-base" x1="0" y1={HEIGHT - PAD} x2={WIDTH} y2={HEIGHT - PAD} />
      {area && <path className="sparkline-area" d={area} />}
      {line && <path className="sparkline-line" d={line} vectorEffect="non-scaling-stroke" />}
    </svg>
  );
});
