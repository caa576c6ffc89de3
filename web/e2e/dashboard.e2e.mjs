// End to end in a real browser: Debian's Chromium driven by playwright-core against the real
// stack (Redis, NATS, bridge, gateway serving the built dashboard). Run by `npm run e2e`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { chromium } from "playwright-core";
import { ROOT, Stack, waitUntil } from "./stack.mjs";

const API_KEY = "e2e-api-key-0001";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// Written on every run; docs/screenshots/ holds the copies the README shows.
const SCREENSHOTS = process.env.SCREENSHOTS_DIR ?? path.join(ROOT, "web", "e2e", "screenshots");

let stack;
let redis;
let browser;
let page;

function event(type, id, data = {}) {
  return JSON.stringify({
    type,
    payload: { id, action: type === "ORDER_RECEIVED" ? "created" : "updated", data },
    timestamp: new Date().toISOString(),
  });
}

const CHANNEL = {
  INVENTORY_CHANGE: "rakuda:realtime:inventory",
  ORDER_RECEIVED: "rakuda:realtime:orders",
  PRICE_CHANGE: "rakuda:realtime:pricing",
  LISTING_UPDATE: "rakuda:realtime:listings",
};

async function publish(type, id, data) {
  await redis.publish(CHANNEL[type], event(type, id, data));
}

async function counter(type) {
  const text = await page.getByTestId(`counter-${type}`).textContent();
  return Number((text ?? "").replace(/[^0-9]/g, ""));
}

async function connectionState() {
  return page.locator("[data-state]").first().getAttribute("data-state");
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

test("the API key from the URL is kept, removed from the address bar, and the stream opens", async () => {
  await page.goto(`${stack.url}/?apiKey=${API_KEY}&heartbeat=1000`);
  await waitUntil("the address bar without the key", async () => !page.url().includes("apiKey"));
  await waitUntil("connection open", async () => (await connectionState()) === "open");
  const stored = await page.evaluate(() => sessionStorage.getItem("rakuda.apiKey"));
  assert.equal(stored, API_KEY);
});

test("published events show in the feed, the counters and a toast", async () => {
  await publish("INVENTORY_CHANGE", "prod_0042", { isAvailable: false, stock: 0 });
  await publish("PRICE_CHANGE", "prod_0007", { oldPrice: 120, newPrice: 114.5, currency: "USD" });
  await publish("LISTING_UPDATE", "lst_0003", { status: "ACTIVE" });
  await waitUntil("three counters at 1", async () =>
    (await counter("INVENTORY_CHANGE")) === 1 && (await counter("PRICE_CHANGE")) === 1 && (await counter("LISTING_UPDATE")) === 1,
  );
  await waitUntil("feed rows", async () => (await page.getByTestId("feed-row").count()) >= 3);
  const feed = await page.getByTestId("event-feed").textContent();
  assert.match(feed ?? "", /prod_0042/);
  await waitUntil("a toast", async () => (await page.getByTestId("realtime-toast").count()) >= 1);
  await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-first-events.png") });
});

test("clicking an order toast opens the order's page", async () => {
  await publish("ORDER_RECEIVED", "ord_e2e_1", { marketplace: "ebay", total: 129.99, currency: "USD" });
  const toast = page.getByTestId("realtime-toast").filter({ hasText: "ord_e2e_1" });
  await toast.first().waitFor({ timeout: 10000 });
  await toast.first().click();
  await waitUntil("navigation to the order", async () => page.url().endsWith("/orders/ord_e2e_1"));
  // The dashboard (served for every path) reconnects with the stored key.
  await waitUntil("connection open again", async () => (await connectionState()) === "open");
});

test("a dead gateway turns the status amber/red, and a restarted one resumes what was missed", async () => {
  await page.goto(`${stack.url}/?heartbeat=1000`);
  await waitUntil("connection open", async () => (await connectionState()) === "open");
  await stack.killGateway();
  await waitUntil("status not open", async () => (await connectionState()) !== "open", 10000);
  const state = await connectionState();
  assert.ok(state === "reconnecting" || state === "closed", `state ${state}`);
  await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-reconnecting.png") });

  const before = await counter("ORDER_RECEIVED");
  for (let i = 0; i < 3; i += 1) {
    await publish("ORDER_RECEIVED", `ord_missed_${i}`, { marketplace: "amazon", total: 10 + i, currency: "USD" });
  }
  await stack.restartGateway();
  await waitUntil("connection open after restart", async () => (await connectionState()) === "open", 30000);
  await waitUntil("missed orders delivered", async () => (await counter("ORDER_RECEIVED")) >= before + 3, 15000);
  // Replayed on resume as one coalesced frame, which the feed shows as history: one row per
  // order, as they would have looked live.
  const feed = await page.getByTestId("event-feed").textContent();
  for (const id of ["ord_missed_0", "ord_missed_1", "ord_missed_2"]) assert.match(feed ?? "", new RegExp(id));
});

test("a burst of 2,000 events renders without freezing: batch toasts, exact counters", async () => {
  const before = await counter("INVENTORY_CHANGE");
  const pipeline = redis.pipeline();
  for (let i = 0; i < 2000; i += 1) {
    pipeline.publish(CHANNEL.INVENTORY_CHANGE, event("INVENTORY_CHANGE", `prod_${i % 500}`, { n: i, stock: i % 7 }));
  }
  await pipeline.exec();
  await waitUntil("counter +2000", async () => (await counter("INVENTORY_CHANGE")) === before + 2000, 20000);
  // The page answers promptly: the main thread is not stuck rendering 2,000 rows.
  const started = Date.now();
  await page.evaluate(() => 1 + 1);
  assert.ok(Date.now() - started < 1000, "the page responds");
  const toasts = await page.getByTestId("realtime-toast").allTextContents();
  // The default toast policy: of inventory changes, only products going out of stock (stock 0
  // every seventh event here), one toast per batch.
  assert.ok(toasts.some((text) => /\d+ products out of stock/.test(text)), `a batch toast among ${JSON.stringify(toasts)}`);
  assert.ok(toasts.length <= 4, "a few toasts, not one per event");
  assert.ok((await page.getByTestId("feed-row").count()) <= 200, "the feed stays capped");
  await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-burst.png") });
});
