import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The demo dashboard (dashboard/) builds to dist/, which the gateway serves at / when
// GATEWAY_DASHBOARD_DIR points at it. Unit tests run with Vitest from the same config.
export default defineConfig({
  root: "dashboard",
  plugins: [react()],
  build: { outDir: "../dist", emptyOutDir: true },
  test: {
    root: ".",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx", "dashboard/**/*.test.ts", "dashboard/**/*.test.tsx"],
    environment: "node",
    testTimeout: 20000,
  },
});
