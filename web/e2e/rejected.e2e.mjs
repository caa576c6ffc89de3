// End to end in a real browser: the "Rejected" panel. Against the real stack (Redis, NATS,
// bridge, gateway serving the built dashboard), with the page open, a worker publishes bad
// events on Redis; the panel lists each with its reason and channel, and counts it by reason,
// within a few seconds (it polls GET /api/realtime/dlq). Run by `npm run e2e`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { chromium } from "playwright-core";
import { ROOT, Stack, waitUntil } from "./stack.mjs";

const API_KEY = "e2e-api-key-0005";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOTS_DIR ?? path.join(ROOT, "web", "e2e", "screenshots");
/** The panel reads every 3 s; room for a loaded machine. */
const SHOWN_WITHIN_MS = 15_000;

let stack;
let redis;
let browser;
let page;

async function rows() {
  return page.getByTestId("rejected-row").evaluateAll((items) =>
    items.map((item) => ({ reason: item.dataset.reason, text: item.textContent ?? "" })),
  );
}

async function countOf(reason) {
  const item = page.locator(`[data-testid="rejected-count"][data-reason="${reason}"] .rejected-count`);
  if ((await item.count()) === 0) return 0;
  return Number(await item.textContent());
}

before(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  stack = await Stack.start({ apiKey: API_KEY, gatewayEnv: { SSE_HEARTBEAT_INTERVAL: "1000" } });
  redis = new Redis(stack.redisUrl);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
});

after(async () => {
  await browser?.close();
  redis?.disconnect();
  await stack?.stop();
});

test("the Rejected panel shows a bad event published while the page is open, with its reason", async () => {
  await page.goto(`${stack.url}/?apiKey=${API_KEY}&heartbeat=1000`);
  await waitUntil("the panel read the DLQ", async () =>
    (await page.getByTestId("rejected-panel").getAttribute("data-status")) === "ok",
  );
  assert.equal(await page.getByTestId("rejected-total").textContent(), "0");
  assert.match((await page.getByTestId("rejected-list").textContent()) ?? "", /Nothing rejected/);

  await redis.publish("rakuda:realtime:orders", "not json <b>from worker 7</b>");
  const published = Date.now();
  await waitUntil("the bad event in the panel", async () => (await rows()).length === 1, SHOWN_WITHIN_MS);
  const seenAfterMs = Date.now() - published;
  const [row] = await rows();
  assert.equal(row.reason, "invalid_json");
  // Written out, not only coloured: the reason, the channel and the first bytes as text.
  assert.match(row.text, /invalid_json/);
  assert.match(row.text, /orders/);
  assert.match(row.text, /not json <b>from worker 7<\/b>/);
  assert.equal(await page.locator(".rejected-head b").count(), 0, "the bytes are shown as text, never as markup");
  await waitUntil("counted by reason", async () => (await countOf("invalid_json")) === 1, SHOWN_WITHIN_MS);
  assert.equal(await page.getByTestId("rejected-total").textContent(), "1");

  // An event of an unknown type: the newest comes first, each reason counted.
  await redis.publish(
    "rakuda:realtime:inventory",
    JSON.stringify({ type: "INVENTORY_TELEPORTED", payload: { id: "prod_1", action: "updated" }, timestamp: new Date().toISOString() }),
  );
  await waitUntil("the second bad event", async () => (await rows()).length === 2, SHOWN_WITHIN_MS);
  assert.deepEqual((await rows()).map((r) => r.reason), ["unknown_type", "invalid_json"]);
  await waitUntil("both reasons counted", async () => (await countOf("unknown_type")) === 1 && (await countOf("invalid_json")) === 1, SHOWN_WITHIN_MS);
  await page.getByTestId("rejected-panel").screenshot({ path: path.join(SCREENSHOTS, "dashboard-rejected.png") });
  console.log(`rejected event shown ${seenAfterMs} ms after it was published`);
});
