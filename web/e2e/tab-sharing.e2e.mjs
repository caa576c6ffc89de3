// End to end in a real browser: tab sharing never hands a tab what its own credential cannot
// read. In one browser context (one origin's locks and broadcast channels), against the real
// stack (Redis, NATS, bridge, gateway serving the built dashboard):
// - two dashboard tabs with the right key share one gateway connection;
// - a dashboard tab with a wrong key shows the gateway's refusal and no event;
// - two tabs whose token reads only `orders` (the client from the current source, in the same
//   sharing namespace as the dashboard) share a connection of their own and receive only orders;
// - the gateway holds two connections in all (`gateway_connections`).
// Run by `npm run e2e`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { chromium } from "playwright-core";
import { build } from "vite";
import { ROOT, Stack, waitUntil } from "./stack.mjs";

const API_KEY = "e2e-api-key-0004";
const WRONG_KEY = "e2e-wrong-key-0004";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const WEB = path.join(ROOT, "web");
const HEARTBEAT_MS = 1000;

let stack;
let redis;
let browser;

/** The client from the current source, as a script that sets `window.Rakuda`. */
async function clientBundle() {
  const result = await build({
    configFile: false,
    root: WEB,
    logLevel: "silent",
    build: {
      write: false,
      minify: false,
      lib: { entry: path.join(WEB, "src/client/index.ts"), formats: ["iife"], name: "Rakuda", fileName: () => "client.js" },
    },
  });
  const [output] = Array.isArray(result) ? result : [result];
  return output.output[0].code;
}

function event(type, id, data = {}) {
  return JSON.stringify({
    type,
    payload: { id, action: type === "ORDER_RECEIVED" ? "created" : "updated", data },
    timestamp: new Date().toISOString(),
  });
}

async function publishOrder(id) {
  await redis.publish("rakuda:realtime:orders", event("ORDER_RECEIVED", id, { total: 10, currency: "USD" }));
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

/** A token that reads only `orders`, minted the way an app's backend would: the page never sees the key. */
async function mintOrdersToken() {
  const response = await fetch(`${stack.url}/api/realtime/token`, {
    method: "POST",
    headers: { "X-API-Key": API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify({ channels: ["orders"] }),
  });
  if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
  const grant = await response.json();
  return { token: grant.token, expiresAt: grant.expiresAt, expiresInSeconds: grant.expiresInSeconds };
}

function logTails() {
  return ["bridge", "gateway"]
    .map((name) => `--- ${name}.log\n${fs.readFileSync(path.join(stack.dir, `${name}.log`), "utf8").slice(-3000)}`)
    .join("\n");
}

before(async () => {
  stack = await Stack.start({
    apiKey: API_KEY,
    gatewayEnv: {
      SSE_HEARTBEAT_INTERVAL: String(HEARTBEAT_MS),
      // The wrong-key tab keeps retrying from 127.0.0.1, as do the right ones: the failure
      // limit per address is not what this test is about.
      AUTH_FAILURES_PER_MINUTE: "100000",
    },
  });
  redis = new Redis(stack.redisUrl);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  redis?.disconnect();
  await stack?.stop();
});

test("tabs share a connection only with tabs of the same credential: a narrow token gets its channels, a wrong key nothing", async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const bundle = await clientBundle();
  try {
    const dashboard = async (key) => {
      const tab = await context.newPage();
      await tab.goto(`${stack.url}/?apiKey=${key}&heartbeat=${HEARTBEAT_MS}`);
      return tab;
    };
    const right = [await dashboard(API_KEY), await dashboard(API_KEY)];
    const wrong = await dashboard(WRONG_KEY);

    const narrowTab = async () => {
      const tab = await context.newPage();
      await tab.exposeFunction("mintOrdersToken", mintOrdersToken);
      // A page the gateway serves: same origin as the dashboard, so the same locks and channels.
      await tab.goto(`${stack.url}/readyz`);
      await tab.addScriptTag({ content: bundle });
      await tab.evaluate((heartbeatIntervalMs) => {
        const client = new window.Rakuda.SharedRealtimeClient({
          baseUrl: "",
          getToken: () => window.mintOrdersToken(),
          heartbeatIntervalMs,
          // The dashboard's namespace: only the credential tells these tabs apart from it.
          shareName: "rakuda-dashboard",
        });
        const seen = { types: [], ids: [] };
        client.on("*", (e) => {
          seen.types.push(e.type);
          seen.ids.push(e.payload.id);
        });
        client.start();
        window.e2e = { client, seen };
      }, HEARTBEAT_MS);
      return tab;
    };
    const narrow = [await narrowTab(), await narrowTab()];

    // The bridge subscribes a moment after start: publish orders until every tab that can read
    // orders has one (which also means each has found its leader).
    const feed = async (tab) => (await tab.getByTestId("event-feed").textContent()) ?? "";
    const narrowIds = (tab) => tab.evaluate(() => window.e2e.seen.ids);
    for (let n = 0; ; n += 1) {
      await publishOrder(`ord_warmup_${n}`);
      const arrived = await waitUntil("a warm-up order in every sharing tab", async () => {
        const dashboards = await Promise.all(right.map(feed));
        const tokens = await Promise.all(narrow.map(narrowIds));
        return dashboards.every((text) => text.includes(`ord_warmup_${n}`)) && tokens.every((ids) => ids.includes(`ord_warmup_${n}`));
      }, 8000).then(() => true, () => false);
      if (arrived) break;
      assert.ok(n < 5, "no warm-up order reached the tabs");
    }

    // An inventory event, then an order: the relay keeps stream order, so a tab that has the
    // order would have had the inventory event by then if it were handed it.
    await redis.publish("rakuda:realtime:inventory", event("INVENTORY_CHANGE", "prod_share_1", { isAvailable: false, stock: 0 }));
    await publishOrder("ord_share_1");
    await waitUntil("both events in the right-key tabs", async () =>
      (await Promise.all(right.map(feed))).every((text) => text.includes("prod_share_1") && text.includes("ord_share_1")),
    );
    await waitUntil("the order in the orders-token tabs", async () =>
      (await Promise.all(narrow.map(narrowIds))).every((ids) => ids.includes("ord_share_1")),
    );
    for (const tab of narrow) {
      const types = await tab.evaluate(() => [...new Set(window.e2e.seen.types)]);
      assert.deepEqual(types, ["ORDER_RECEIVED"], "an orders token's tab receives orders only");
    }

    // The wrong key: the gateway's refusal on screen, and no event.
    const error = wrong.getByTestId("connection-error");
    await waitUntil("the refusal on the wrong-key tab", async () => (await error.getAttribute("data-refused")) === "true", 20_000);
    assert.match((await error.textContent()) ?? "", /HTTP 401/);
    assert.equal(await wrong.getByTestId("feed-row").count(), 0, "the wrong-key tab shows no event");
    assert.ok(!(await feed(wrong)).includes("ord_share_1"));
    assert.notEqual(await wrong.locator("[data-state]").first().getAttribute("data-state"), "open");

    // One connection per credential: each pair of tabs is a leader and a follower.
    const dashboardRole = (tab) => tab.getByTestId("tab-role").getAttribute("data-role");
    const narrowRole = (tab) => tab.evaluate(() => window.e2e.client.role);
    const pair = async (tabs, role) => (await Promise.all(tabs.map(role))).sort().join();
    assert.equal(await pair(right, dashboardRole), "follower,leader", "the right-key tabs share");
    assert.equal(await pair(narrow, narrowRole), "follower,leader", "the orders-token tabs share");
    await waitUntil("two gateway connections: one per credential", async () => (await gatewayConnections()) === 2, 10_000).catch(async (e) => {
      console.log(`gateway_connections ${await gatewayConnections()}`);
      throw e;
    });
  } catch (error) {
    console.log(logTails());
    throw error;
  } finally {
    await context.close();
  }
});
