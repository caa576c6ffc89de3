// End to end in a real browser: the dashboard shows the current picture the moment it opens.
// Against the real stack (Redis, NATS, bridge, gateway serving the built dashboard):
// - 300 mixed events, then the page opens: the feed shows the latest within 2 s, the counters
//   show today's totals exactly, and a reload shows the same (timed: open -> filled screen);
// - "out of stock now" lists exactly the products whose latest event says unavailable, and
//   follows a product back in stock;
// - 5 tabs hold one gateway connection; closing the leader hands over without losing an event;
// - with the bridge stopped the page says it is stale within the canary window, and recovers.
// Run by `npm run e2e`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { chromium } from "playwright-core";
import { ROOT, Stack, waitUntil } from "./stack.mjs";

const API_KEY = "e2e-api-key-0003";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOTS_DIR ?? path.join(ROOT, "web", "e2e", "screenshots");
const HEARTBEAT_MS = 1000;
const CANARY_DEGRADED_AFTER_S = 3;
/** How long the page may take to say it is stale once the bridge is gone: the canary window,
 * a canary interval and two heartbeats, with room for a loaded machine. */
const STALE_DEADLINE_MS = (CANARY_DEGRADED_AFTER_S + 1) * 1000 + 2 * HEARTBEAT_MS + 6000;
const OPEN_RUNS = 5;

const CHANNEL = {
  INVENTORY_CHANGE: "rakuda:realtime:inventory",
  ORDER_RECEIVED: "rakuda:realtime:orders",
  PRICE_CHANGE: "rakuda:realtime:pricing",
  LISTING_UPDATE: "rakuda:realtime:listings",
};
const TYPES = Object.keys(CHANNEL);

let stack;
let redis;
let browser;
/** Every event the test published, per type: what "today" must say. */
const published = { INVENTORY_CHANGE: 0, ORDER_RECEIVED: 0, PRICE_CHANGE: 0, LISTING_UPDATE: 0 };
/** The latest availability the test published per product. */
const available = new Map();
let lastPublished = null;

function event(type, id, data) {
  return JSON.stringify({
    type,
    payload: { id, action: type === "ORDER_RECEIVED" ? "created" : "updated", data },
    timestamp: new Date().toISOString(),
  });
}

function record(type, id, data) {
  published[type] += 1;
  if (type === "INVENTORY_CHANGE") available.set(id, data.isAvailable);
  lastPublished = { type, id };
  return [CHANNEL[type], event(type, id, data)];
}

async function publish(type, id, data = {}) {
  await redis.publish(...record(type, id, data));
}

function outOfStockNow() {
  return [...available].filter(([, isAvailable]) => isAvailable === false).map(([id]) => id).sort();
}

/** Reads the snapshot the way the page does (every page), for the test's own waits. */
async function snapshotIds() {
  const ids = new Map();
  let after = 0;
  for (let pages = 0; pages < 100; pages += 1) {
    const response = await fetch(`${stack.url}/api/realtime/snapshot?channels=inventory&limit=500&after=${after}`, {
      headers: { "X-API-Key": API_KEY },
    });
    assert.equal(response.status, 200, "snapshot answers");
    const page = await response.json();
    for (const e of page.events) ids.set(e.payload.id, e.payload.data?.isAvailable);
    if (page.next === null) return ids;
    after = page.next;
  }
  throw new Error("snapshot did not end within 100 pages");
}

/** Until the stream holds product `id` with `isAvailable`, i.e. everything published before it. */
async function untilStored(id, isAvailable) {
  await waitUntil(`${id} stored`, async () => (await snapshotIds()).get(id) === isAvailable, 20_000);
}

async function gatewayConnections() {
  const text = await (await fetch(`${stack.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    const match = /^gateway_connections\{[^}]*\} (\d+(?:\.\d+)?)$/.exec(line);
    if (match) total += Number(match[1]);
  }
  return total;
}

async function counters(page) {
  const out = {};
  for (const type of TYPES) {
    const text = await page.getByTestId(`counter-${type}`).textContent();
    out[type] = /^\d+$/.test(text ?? "") ? Number(text) : null;
  }
  return out;
}

const sameCounts = (a, b) => TYPES.every((type) => a[type] === b[type]);

async function feedText(page) {
  return (await page.getByTestId("event-feed").textContent()) ?? "";
}

async function panelIds(page) {
  return (await page.getByTestId("out-of-stock-row").evaluateAll((rows) => rows.map((row) => row.dataset.id))).sort();
}

/** A filled screen: the latest event in the feed, exact counters, the out-of-stock panel read. */
async function filled(page) {
  if (!(await feedText(page)).includes(lastPublished.id)) return false;
  if (!sameCounts(await counters(page), published)) return false;
  const loaded = await page.locator('[aria-label="Out of stock now"]').getAttribute("data-loaded");
  return loaded === "true";
}

function url(query = "") {
  return `${stack.url}/?apiKey=${API_KEY}&heartbeat=${HEARTBEAT_MS}${query}`;
}

function logTails() {
  return ["bridge", "gateway"]
    .map((name) => `--- ${name}.log\n${fs.readFileSync(path.join(stack.dir, `${name}.log`), "utf8").slice(-3000)}`)
    .join("\n");
}

before(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  stack = await Stack.start({
    apiKey: API_KEY,
    gatewayEnv: {
      SSE_HEARTBEAT_INTERVAL: String(HEARTBEAT_MS),
      CANARY_INTERVAL: "1s",
      CANARY_DEGRADED_AFTER: `${CANARY_DEGRADED_AFTER_S}s`,
      // Not UTC, so "today" is a local day that the summary and the page must agree on.
      SUMMARY_TIMEZONE: "Asia/Tokyo",
    },
  });
  redis = new Redis(stack.redisUrl);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"],
  });
  // The bridge subscribes a moment after start: warm up until an event is stored.
  for (let n = 0; ; n += 1) {
    await publish("INVENTORY_CHANGE", `prod_warmup_${n}`, { isAvailable: true, stock: 5 });
    const stored = await untilStored(`prod_warmup_${n}`, true).then(() => true, () => false);
    if (stored) break;
    assert.ok(n < 5, "no warm-up event was stored");
  }
});

after(async () => {
  await browser?.close();
  redis?.disconnect();
  await stack?.stop();
});

test("300 mixed events, then the page opens: latest in the feed within 2 s, today's totals exact, the same after a reload", async () => {
  const pipeline = redis.pipeline();
  for (let i = 0; i < 299; i += 1) {
    const type = TYPES[i % 4];
    const id = { INVENTORY_CHANGE: `prod_${Math.floor(i / 4) % 40}`, ORDER_RECEIVED: `ord_${i}`, PRICE_CHANGE: `prod_${i % 30}`, LISTING_UPDATE: `lst_${i % 25}` }[type];
    const data =
      type === "INVENTORY_CHANGE"
        ? { isAvailable: Math.floor(i / 4) % 3 !== 0, stock: Math.floor(i / 4) % 3 === 0 ? 0 : 1 + (i % 11) }
        : type === "ORDER_RECEIVED"
          ? { marketplace: "ebay", total: 10 + i, currency: "USD" }
          : type === "PRICE_CHANGE"
            ? { oldPrice: 100, newPrice: 100 + (i % 9), currency: "USD" }
            : { status: "ACTIVE" };
    // `n` makes every message unique: two events with the same bytes (same entity, data and
    // millisecond) are one event to the bridge, which stores identical bytes once, and today's
    // counts would then be one short of what the test counted.
    pipeline.publish(...record(type, id, { ...data, n: i }));
  }
  pipeline.publish(...record("INVENTORY_CHANGE", "prod_latest", { isAvailable: false, stock: 0 }));
  await pipeline.exec();
  await untilStored("prod_latest", false);

  const timings = [];
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  try {
    for (let run = 0; run < OPEN_RUNS; run += 1) {
      const page = await context.newPage();
      const started = Date.now();
      // ?share=0: every run opens a connection of its own, as a first tab would.
      await page.goto(url("&share=0"));
      await waitUntil("the latest event in the feed", async () => (await feedText(page)).includes("prod_latest"), 2000);
      await waitUntil("a filled screen", () => filled(page), 15_000).catch(async (error) => {
        console.log(`counters ${JSON.stringify(await counters(page))}, published ${JSON.stringify(published)}`);
        throw error;
      });
      timings.push(Date.now() - started);
      if (run === 0) {
        // The README's screenshot: a page opened after events had flowed.
        await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard.png") });
        // A reload shows the same.
        await page.reload();
        await waitUntil("the latest event in the feed after a reload", async () => (await feedText(page)).includes("prod_latest"), 2000);
        await waitUntil("a filled screen after a reload", () => filled(page), 15_000);
        const rows = await page.getByTestId("feed-row").count();
        assert.ok(rows >= 60, `the feed is filled (${rows} rows)`);
        const ages = await page.getByTestId("feed-age").allTextContents();
        assert.ok(ages.length >= rows && ages.every((age) => /ago|just now/.test(age)), "every row shows its age");
      }
      await page.close();
    }
  } finally {
    await context.close();
  }
  const sorted = [...timings].sort((a, b) => a - b);
  console.log(`open -> filled screen (ms): runs ${JSON.stringify(timings)}, median ${sorted[Math.floor(sorted.length / 2)]}`);
});

test('"out of stock now" lists exactly the unavailable products and follows them back in stock', async () => {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  try {
    await page.goto(url("&share=0"));
    await waitUntil("the panel read", async () => (await page.locator('[aria-label="Out of stock now"]').getAttribute("data-loaded")) === "true");
    const expected = outOfStockNow();
    assert.ok(expected.length >= 10, `enough products out of stock to mean something (${expected.length})`);
    await waitUntil("the panel equal to what was published", async () => JSON.stringify(await panelIds(page)) === JSON.stringify(expected), 5000).catch(async (error) => {
      console.log(`panel ${JSON.stringify(await panelIds(page))}\nexpected ${JSON.stringify(expected)}`);
      throw error;
    });
    assert.equal(Number(await page.getByTestId("out-of-stock-count").textContent()), expected.length);

    const [back] = expected;
    await publish("INVENTORY_CHANGE", back, { isAvailable: true, stock: 12 });
    await publish("INVENTORY_CHANGE", "prod_new_out", { isAvailable: false, stock: 0 });
    const now = outOfStockNow();
    assert.ok(!now.includes(back) && now.includes("prod_new_out"));
    await waitUntil("the panel following live events", async () => JSON.stringify(await panelIds(page)) === JSON.stringify(now), 5000);
  } finally {
    await page.close();
  }
});

test("5 tabs hold one gateway connection; the leader closes and another takes over losing nothing", async () => {
  // One context: its tabs share an origin's locks and broadcast channels, like a browser's.
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    const tabs = [];
    for (let i = 0; i < 5; i += 1) {
      const tab = await context.newPage();
      await tab.goto(url());
      tabs.push(tab);
    }
    const role = (tab) => tab.getByTestId("tab-role").getAttribute("data-role");
    await waitUntil("one leader and four followers", async () => {
      const roles = await Promise.all(tabs.map(role));
      return roles.filter((r) => r === "leader").length === 1 && roles.filter((r) => r === "follower").length === 4;
    }, 15_000);
    await waitUntil("every tab filled", async () => (await Promise.all(tabs.map(filled))).every(Boolean), 15_000).catch(async (error) => {
      for (const tab of tabs) {
        const loaded = await tab.locator('[aria-label="Out of stock now"]').getAttribute("data-loaded");
        console.log(`${await role(tab)}: latest in feed ${(await feedText(tab)).includes(lastPublished.id)}, panel ${loaded}, counters ${JSON.stringify(await counters(tab))}`);
      }
      console.log(`published ${JSON.stringify(published)}, latest ${JSON.stringify(lastPublished)}`);
      throw error;
    });
    await waitUntil("one gateway connection", async () => (await gatewayConnections()) === 1, 5000);
    assert.equal(await gatewayConnections(), 1, "5 tabs, 1 connection");

    const roles = await Promise.all(tabs.map(role));
    const leader = tabs[roles.indexOf("leader")];
    const rest = tabs.filter((tab) => tab !== leader);
    await leader.close();
    // Published while the leadership changes hands: every one must reach every tab, once.
    for (let i = 0; i < 20; i += 1) {
      await publish("ORDER_RECEIVED", `ord_handover_${i}`, { marketplace: "amazon", total: 5 + i, currency: "USD" });
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await waitUntil("a new leader", async () => (await Promise.all(rest.map(role))).filter((r) => r === "leader").length === 1, 10_000);
    await waitUntil("every remaining tab with exact counters", async () => {
      const all = await Promise.all(rest.map(counters));
      return all.every((c) => sameCounts(c, published));
    }, 15_000).catch(async (error) => {
      console.log(`counters ${JSON.stringify(await Promise.all(rest.map(counters)))}, published ${JSON.stringify(published)}`);
      throw error;
    });
    // Each order by id, not only the count: the orders panel lists the latest orders seen
    // (opened in-page, so the tab keeps what it received).
    for (const tab of rest) {
      await tab.evaluate(() => {
        window.history.pushState(null, "", "/orders");
        window.dispatchEvent(new PopStateEvent("popstate"));
      });
      await waitUntil("the orders panel", async () => ((await tab.locator("body").textContent()) ?? "").includes("ord_handover_19"), 5000);
      const text = (await tab.locator("body").textContent()) ?? "";
      const missing = Array.from({ length: 20 }, (_, i) => `ord_handover_${i}`).filter((id) => !new RegExp(`${id}(?!\\d)`).test(text));
      assert.deepEqual(missing, [], "every order published during the handover reached every tab");
    }
    await waitUntil("still one gateway connection", async () => (await gatewayConnections()) === 1, 5000);
  } catch (error) {
    console.log(logTails());
    throw error;
  } finally {
    await context.close();
  }
});

test("with the bridge stopped the page says it is stale within the canary window, and recovers", async () => {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const stale = () => page.getByTestId("freshness").getAttribute("data-stale");
  try {
    await page.goto(url("&share=0"));
    await waitUntil("a fresh page", async () => (await stale()) === "false", 15_000);
    await stack.bridge.stop();
    const stopped = Date.now();
    await waitUntil("the stale state", async () => (await stale()) === "true", STALE_DEADLINE_MS);
    console.log(`stale shown ${Date.now() - stopped} ms after the bridge stopped`);
    await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-stale.png") });
    stack.bridge.start();
    await waitUntil("fresh again", async () => (await stale()) === "false", 30_000);
  } catch (error) {
    console.log(logTails());
    throw error;
  } finally {
    await page.close();
  }
});
