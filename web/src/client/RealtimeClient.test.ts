import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Mock } from "vitest";
import { CLOSE_CODES } from "../generated/schema";
import type { BatchFrame, EventType, SequencedEvent, ServerMessage } from "../generated/schema";
import { RealtimeClient, backoffDelay, reconnectDelay, renewalMargin } from "./index";
import type { ConnectionState, RealtimeClientOptions, RealtimeFrame, ResetCause } from "./index";

// ---- fakes: just enough of EventSource, WebSocket and fetch for the client ----

type Handler = (event: Event) => void;

class FakeTarget {
  private readonly handlers = new Map<string, Handler[]>();

  addEventListener(type: string, handler: Handler): void {
    this.handlers.set(type, [...(this.handlers.get(type) ?? []), handler]);
  }

  protected dispatch(type: string, event: Event): void {
    for (const handler of this.handlers.get(type) ?? []) handler(event);
  }
}

class FakeEventSource extends FakeTarget {
  static instances: FakeEventSource[] = [];
  closed = false;

  constructor(readonly url: string) {
    super();
    FakeEventSource.instances.push(this);
  }

  close(): void {
    this.closed = true;
  }

  simulateOpen(): void {
    this.dispatch("open", new Event("open"));
  }

  simulateError(): void {
    this.dispatch("error", new Event("error"));
  }

  /** One SSE record: `id:` (may be empty), `event:`, `data:`. */
  emit(name: string, data: unknown, id = ""): void {
    this.dispatch(name, new MessageEvent(name, { data: JSON.stringify(data), lastEventId: id }));
  }
}

class FakeWebSocket extends FakeTarget {
  static instances: FakeWebSocket[] = [];
  closed = false;

  constructor(readonly url: string) {
    super();
    FakeWebSocket.instances.push(this);
  }

  /** Like a browser, a close we asked for still reports a close event (here, at once). */
  close(code?: number): void {
    this.closed = true;
    this.simulateClose(code ?? 1005);
  }

  simulateOpen(): void {
    this.dispatch("open", new Event("open"));
  }

  simulateClose(code: number): void {
    const event = Object.assign(new Event("close"), { code, reason: "", wasClean: true });
    this.dispatch("close", event);
  }

  /** A server message, typed by the generated envelope. */
  send(message: ServerMessage): void {
    this.dispatch("message", new MessageEvent("message", { data: JSON.stringify(message) }));
  }
}

const BASE = "https://gw.test";
const API_KEY = "secret-api-key-123";

function grantResponse(token: string, validForMs: number): Response {
  const expiresAt = new Date(Date.now() + validForMs).toISOString();
  return new Response(JSON.stringify({ token, expiresAt, channels: ["inventory", "orders"] }), {
    status: 200,
    headers: { "Content-Type": "application/json" },
  });
}

/** A fetch that mints tok-1, tok-2, ... each valid for `validForMs`. */
function tokenFetch(validForMs = 10 * 60_000) {
  let minted = 0;
  return vi.fn<typeof fetch>(async () => {
    minted += 1;
    return grantResponse(`tok-${minted}`, validForMs);
  });
}

function event(type: EventType, seq: number, id = `p_${seq}`): SequencedEvent {
  return { type, seq, payload: { id, action: "updated" }, timestamp: "2026-11-22T10:00:00.000Z" };
}

function batch(type: EventType, events: SequencedEvent[], count = events.length): BatchFrame {
  return { type, batch: true, count, events };
}

function heartbeat(instance = "gw-1", seq = 0, degraded = false) {
  return { instance, seq, time: "2026-11-22T10:00:30.000Z", degraded };
}

/** Lets pending promises (token request, response.json()) settle without moving the clock. */
async function settle(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

type ClientOverrides = Partial<Omit<RealtimeClientOptions, "fetchImpl">> & {
  fetchImpl?: Mock<typeof fetch>;
};

function makeClient(overrides: ClientOverrides = {}) {
  const fetchImpl = overrides.fetchImpl ?? tokenFetch();
  const client = new RealtimeClient({
    baseUrl: BASE,
    apiKey: API_KEY,
    EventSourceImpl: FakeEventSource as unknown as typeof EventSource,
    WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket,
    ...overrides,
    fetchImpl,
  });
  const states: ConnectionState[] = [];
  client.onState((state) => states.push(state));
  return { client, fetchImpl, states };
}

function lastSource(): FakeEventSource {
  const source = FakeEventSource.instances.at(-1);
  if (!source) throw new Error("no EventSource was created");
  return source;
}

function lastSocket(): FakeWebSocket {
  const socket = FakeWebSocket.instances.at(-1);
  if (!socket) throw new Error("no WebSocket was created");
  return socket;
}

/** Starts the client and opens its first SSE connection. */
async function startOpen(client: RealtimeClient): Promise<FakeEventSource> {
  client.start();
  await settle();
  const source = lastSource();
  source.simulateOpen();
  return source;
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-11-22T10:00:00.000Z"));
  FakeEventSource.instances = [];
  FakeWebSocket.instances = [];
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

// ---- backoff ----

describe("backoffDelay", () => {
  const randoms = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999, 1];

  it("stays within [0, max] for many attempts and random values", () => {
    for (let attempt = 0; attempt < 100; attempt++) {
      for (const r of randoms) {
        const delay = backoffDelay(attempt, 3000, 30000, () => r);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(30000);
      }
    }
    for (let i = 0; i < 1000; i++) {
      const delay = backoffDelay(i % 40, 500, 8000);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(8000);
    }
    expect(backoffDelay(2, 3000, 30000, () => Number.NaN)).toBe(12000);
    expect(backoffDelay(2, 3000, 30000, () => -1)).toBe(0);
  });

  it("grows its window with attempts until the cap", () => {
    const top = (attempt: number) => backoffDelay(attempt, 3000, 30000, () => 1);
    expect([0, 1, 2, 3, 4, 5, 20].map(top)).toEqual([3000, 6000, 12000, 24000, 30000, 30000, 30000]);
    for (let attempt = 0; attempt < 10; attempt++) {
      expect(top(attempt + 1)).toBeGreaterThanOrEqual(top(attempt));
    }
  });

  // Full jitter: the whole window, the first attempt included. A crowd dropped at the same
  // instant (a gateway killed) comes back spread over [0, 3 s], not at 3 s exactly.
  it("jitters uniformly over the whole window, from the first attempt on", () => {
    expect(backoffDelay(0, 3000, 30000, () => 0)).toBe(0);
    expect(backoffDelay(0, 3000, 30000, () => 0.25)).toBe(750);
    expect(backoffDelay(0, 3000, 30000, () => 0.5)).toBe(1500);
    expect(backoffDelay(3, 1000, 100000, () => 0.5)).toBe(4000);
    expect(backoffDelay(3, 1000, 100000, () => 1)).toBe(8000);
    const firsts = new Set(Array.from({ length: 200 }, () => Math.floor(backoffDelay(0, 3000, 30000) / 300)));
    expect(firsts.size).toBeGreaterThanOrEqual(8); // of 10 buckets of 300 ms
  });
});

describe("reconnectDelay", () => {
  it("is the backoff when the server gave no Retry-After", () => {
    expect(reconnectDelay(1, 3000, 30000, null, () => 0.5)).toBe(3000);
  });

  it("waits at least Retry-After, plus up to a second at random, unless the backoff is longer", () => {
    expect(reconnectDelay(0, 3000, 30000, 4000, () => 0)).toBe(4000);
    expect(reconnectDelay(0, 3000, 30000, 4000, () => 0.5)).toBe(4500);
    expect(reconnectDelay(0, 3000, 30000, 4000, () => 1)).toBe(5000);
    // The backoff has grown past it: the backoff stands.
    expect(reconnectDelay(4, 3000, 30000, 2000, () => 1)).toBe(30000);
  });
});

// ---- the state machine ----

describe("connection state", () => {
  it("goes connecting → open → reconnecting → open, and closed on stop", async () => {
    vi.spyOn(Math, "random").mockReturnValue(1); // the longest backoff: 3 s
    const { client, states } = makeClient();
    expect(client.state).toBe("closed");

    client.start();
    expect(client.state).toBe("connecting");
    await settle();
    const first = lastSource();
    first.simulateOpen();
    expect(client.state).toBe("open");

    first.simulateError();
    expect(client.state).toBe("reconnecting");
    expect(first.closed).toBe(true);
    expect(client.lastError).toMatch(/error/);

    await vi.advanceTimersByTimeAsync(2999);
    expect(FakeEventSource.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    const second = lastSource();
    expect(second).not.toBe(first);
    expect(client.state).toBe("reconnecting");
    second.simulateOpen();
    expect(client.state).toBe("open");
    expect(client.lastError).toBeNull();

    client.stop();
    expect(client.state).toBe("closed");
    expect(second.closed).toBe(true);
    expect(states).toEqual(["connecting", "open", "reconnecting", "open", "closed"]);
  });

  it("notifies only on changes", async () => {
    const { client, states } = makeClient();
    const source = await startOpen(client);
    source.simulateOpen();
    client.start(); // already running: nothing happens
    expect(states).toEqual(["connecting", "open"]);
    client.stop();
    client.stop();
    expect(states).toEqual(["connecting", "open", "closed"]);
  });

  it("stop clears timers, and start after stop connects again", async () => {
    const { client, states } = makeClient();
    const source = await startOpen(client);
    source.simulateError();
    client.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(client.state).toBe("closed");

    client.start();
    await settle();
    expect(FakeEventSource.instances).toHaveLength(2);
    lastSource().simulateOpen();
    expect(client.state).toBe("open");
    expect(states).toEqual(["connecting", "open", "reconnecting", "closed", "connecting", "open"]);
  });

  it("ignores a token that arrives after stop", async () => {
    const { client } = makeClient();
    client.start();
    client.stop();
    await settle();
    expect(FakeEventSource.instances).toHaveLength(0);
    expect(client.state).toBe("closed");
  });

  it("backs off further on repeated failures and starts over after a healthy connection", async () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { client } = makeClient();
    client.start();
    await settle();
    lastSource().simulateError(); // attempt 0: 3 s
    await vi.advanceTimersByTimeAsync(3000);
    expect(FakeEventSource.instances).toHaveLength(2);
    lastSource().simulateError(); // attempt 1: 6 s
    await vi.advanceTimersByTimeAsync(5999);
    expect(FakeEventSource.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeEventSource.instances).toHaveLength(3);

    // Open alone is not enough: it must carry a heartbeat or an event.
    lastSource().simulateOpen();
    lastSource().simulateError(); // attempt 2: 12 s
    await vi.advanceTimersByTimeAsync(11_999);
    expect(FakeEventSource.instances).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeEventSource.instances).toHaveLength(4);

    lastSource().simulateOpen();
    lastSource().emit("heartbeat", heartbeat());
    lastSource().simulateError(); // healthy: back to 3 s
    await vi.advanceTimersByTimeAsync(3000);
    expect(FakeEventSource.instances).toHaveLength(5);
  });
});

// ---- tokens and URLs ----

describe("tokens", () => {
  it("POSTs the key in a header, channels in the body, and never puts the key in a URL", async () => {
    const { client, fetchImpl } = makeClient({ channels: ["inventory", "orders"] });
    const source = await startOpen(client);

    expect(fetchImpl).toHaveBeenCalledTimes(1);
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe(`${BASE}/api/realtime/token`);
    expect(init?.method).toBe("POST");
    expect((init?.headers as Record<string, string>)["X-API-Key"]).toBe(API_KEY);
    expect(JSON.parse(String(init?.body))).toEqual({ channels: ["inventory", "orders"] });

    expect(source.url).toBe(`${BASE}/api/realtime/events?token=tok-1&channels=inventory,orders`);
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1), "1795366240958-1");
    source.simulateError();
    await vi.advanceTimersByTimeAsync(3000);
    for (const s of FakeEventSource.instances) expect(s.url).not.toContain(API_KEY);
    for (const call of fetchImpl.mock.calls) expect(String(call[0])).not.toContain(API_KEY);
  });

  it("sends no body when no channels were given", async () => {
    const { client, fetchImpl } = makeClient();
    const source = await startOpen(client);
    expect(fetchImpl.mock.calls[0]?.[1]?.body).toBeUndefined();
    expect(source.url).toBe(`${BASE}/api/realtime/events?token=tok-1`);
  });

  it("reuses a token on reconnect while it is not due for renewal", async () => {
    const { client, fetchImpl } = makeClient({ fetchImpl: tokenFetch(10 * 60_000) });
    const source = await startOpen(client);
    source.simulateError();
    await vi.advanceTimersByTimeAsync(3000);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(lastSource().url).toContain("token=tok-1");
  });

  it("mints a new token for a reconnect once the old one is due for renewal", async () => {
    // 8 s of life: renewal margin 4 s (half the lifetime).
    vi.spyOn(Math, "random").mockReturnValue(1); // reconnect 3 s after the failure
    const { client, fetchImpl } = makeClient({ fetchImpl: tokenFetch(8_000) });
    const source = await startOpen(client);
    await vi.advanceTimersByTimeAsync(2000);
    source.simulateError(); // before the renewal time: an ordinary failure
    expect(client.state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(3000); // 5 s in: tok-1 is due
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(lastSource().url).toContain("token=tok-2");
  });

  it("does not offer again a token whose connection never opened", async () => {
    const { client, fetchImpl } = makeClient();
    client.start();
    await settle();
    lastSource().simulateError();
    await vi.advanceTimersByTimeAsync(3000);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(lastSource().url).toContain("token=tok-2");
  });

  it("backs off and retries after a refused token request, silently", async () => {
    const consoleSpies = (["log", "warn", "error", "info", "debug"] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation(() => undefined),
    );
    let calls = 0;
    const fetchImpl = vi.fn<typeof fetch>(async () => {
      calls += 1;
      if (calls === 1) {
        return new Response(JSON.stringify({ error: "invalid_api_key", message: "no such key" }), {
          status: 401,
        });
      }
      return grantResponse("tok-ok", 600_000);
    });
    const { client, states } = makeClient({ fetchImpl });
    client.start();
    await settle();
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toContain("401");
    expect(client.lastError).toContain("invalid_api_key");
    expect(FakeEventSource.instances).toHaveLength(0);

    await vi.advanceTimersByTimeAsync(3000);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    lastSource().simulateOpen();
    expect(lastSource().url).toContain("token=tok-ok");
    expect(states).toEqual(["connecting", "reconnecting", "open"]);
    for (const spy of consoleSpies) expect(spy).not.toHaveBeenCalled();
  });

  it("treats a network failure of the token request as a failure too", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => {
      throw new TypeError("Failed to fetch");
    });
    const { client } = makeClient({ fetchImpl });
    client.start();
    await settle();
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toContain("Failed to fetch");
    client.stop();
  });

  it("uses getToken instead of the API key when given", async () => {
    const getToken = vi.fn(async () => ({
      token: "from-backend",
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
    }));
    const { client, fetchImpl } = makeClient({ apiKey: undefined, getToken });
    const source = await startOpen(client);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(fetchImpl).not.toHaveBeenCalled();
    expect(source.url).toBe(`${BASE}/api/realtime/events?token=from-backend`);
  });
});

// ---- token renewal ----

/** A fetch answering with each step in turn (the last one repeats): a grant, a refusal, a throw. */
function scriptedFetch(...steps: (() => Response)[]) {
  let call = 0;
  return vi.fn<typeof fetch>(async () => {
    const step = steps[Math.min(call, steps.length - 1)];
    call += 1;
    if (!step) throw new Error("no step");
    return step();
  });
}

function refusal(status: number, error: string): Response {
  return new Response(JSON.stringify({ error, message: "refused" }), { status });
}

function networkFailure(): Response {
  throw new TypeError("Failed to fetch");
}

/** Resolves when released: a token request still under way. */
function deferredFetch() {
  const pending: ((response: Response) => void)[] = [];
  const fetchImpl = vi.fn<typeof fetch>(
    () => new Promise<Response>((resolve) => pending.push(resolve)),
  );
  return { fetchImpl, release: (response: Response) => pending.shift()?.(response) };
}

describe("renewalMargin", () => {
  it("is 10% of the lifetime, at least 5 s, at most half the lifetime", () => {
    expect(renewalMargin(15 * 60_000)).toBe(90_000);
    expect(renewalMargin(60_000)).toBe(6_000);
    expect(renewalMargin(30_000)).toBe(5_000);
    expect(renewalMargin(6_000)).toBe(3_000);
    expect(renewalMargin(1_000)).toBe(500);
    expect(renewalMargin(0)).toBeNaN();
    expect(renewalMargin(Number.NaN)).toBeNaN();
  });
});

describe("token renewal", () => {
  it("renews ahead of expiry and resumes with the new token and the last cursor, staying open", async () => {
    // 60 s of life: renewed 6 s before expiry.
    const { client, fetchImpl, states } = makeClient({ fetchImpl: tokenFetch(60_000), channels: ["orders"] });
    const seqs: number[] = [];
    client.on("*", (e) => seqs.push(e.seq));
    const first = await startOpen(client);
    first.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1), "e-1");
    await vi.advanceTimersByTimeAsync(30_000);
    first.emit("heartbeat", heartbeat("gw-1", 1), "e-1");
    first.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 2), "e-2");

    await vi.advanceTimersByTimeAsync(23_999);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(first.closed).toBe(false);

    await vi.advanceTimersByTimeAsync(1); // 54 s
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(first.closed).toBe(true);
    const second = lastSource();
    expect(second.url).toBe(`${BASE}/api/realtime/events?token=tok-2&channels=orders&lastEventId=e-2`);

    // Frames of the old connection arriving late are ignored; the replay repeats seq 2.
    first.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 3), "e-3");
    second.simulateOpen();
    second.emit("ORDER_RECEIVED", batch("ORDER_RECEIVED", [event("ORDER_RECEIVED", 2), event("ORDER_RECEIVED", 3)]), "e-3");
    second.emit("heartbeat", heartbeat("gw-2", 3), "e-3");
    expect(seqs).toEqual([1, 2, 3]);
    expect(states).toEqual(["connecting", "open"]);
    expect(client.lastError).toBeNull();

    // The next renewal is due 54 s after tok-2 was minted.
    await vi.advanceTimersByTimeAsync(53_999);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(lastSource().url).toContain("token=tok-3");
    expect(lastSource().url).toContain("lastEventId=e-3");
  });

  it("renews a WebSocket connection the same way", async () => {
    const { client, fetchImpl, states } = makeClient({ transport: "ws", fetchImpl: tokenFetch(60_000) });
    client.start();
    await settle();
    const first = lastSocket();
    first.simulateOpen();
    first.send({ id: "e-4", event: "ORDER_RECEIVED", data: event("ORDER_RECEIVED", 4) });
    await vi.advanceTimersByTimeAsync(54_000);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(first.closed).toBe(true);
    const second = lastSocket();
    expect(second.url).toBe("wss://gw.test/api/realtime/ws?token=tok-2&lastEventId=e-4");
    second.simulateOpen();
    expect(states).toEqual(["connecting", "open"]);
  });

  it("treats WebSocket close 4001 as renew-now: a new token and a reconnect without backoff", async () => {
    const { client, fetchImpl, states } = makeClient({ transport: "ws", fetchImpl: tokenFetch(10 * 60_000) });
    const seqs: number[] = [];
    client.on("*", (e) => seqs.push(e.seq));
    client.start();
    await settle();
    const first = lastSocket();
    first.simulateOpen();
    first.send({ id: "e-5", event: "PRICE_CHANGE", data: event("PRICE_CHANGE", 5) });

    first.simulateClose(CLOSE_CODES.token_expired);
    await settle(); // no timer has to run
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    const second = lastSocket();
    expect(second).not.toBe(first);
    expect(second.url).toBe("wss://gw.test/api/realtime/ws?token=tok-2&lastEventId=e-5");
    second.simulateOpen();
    second.send({ id: "e-6", event: "PRICE_CHANGE", data: batch("PRICE_CHANGE", [event("PRICE_CHANGE", 5), event("PRICE_CHANGE", 6)]) });
    expect(seqs).toEqual([5, 6]);
    expect(states).toEqual(["connecting", "open"]);
    expect(client.lastError).toBeNull();
  });

  it("treats an SSE end once the token is due as renew-now (a timer that ran late)", async () => {
    const { client, fetchImpl, states } = makeClient({ fetchImpl: tokenFetch(60_000) });
    const source = await startOpen(client);
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1), "e-1");
    // A sleeping laptop or a throttled background tab: the clock moves, the timer has not fired.
    vi.setSystemTime(Date.now() + 61_000);
    source.simulateError(); // the gateway ended the stream at expiry
    expect(source.closed).toBe(true);
    await settle();
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(lastSource().url).toBe(`${BASE}/api/realtime/events?token=tok-2&lastEventId=e-1`);
    lastSource().simulateOpen();
    expect(states).toEqual(["connecting", "open"]);
  });

  it("never offers the expired token again, even when the renewal fails", async () => {
    const fetchImpl = scriptedFetch(
      () => grantResponse("tok-1", 10 * 60_000),
      networkFailure,
      () => grantResponse("tok-3", 10 * 60_000),
    );
    const { client, states } = makeClient({ transport: "ws", fetchImpl });
    client.start();
    await settle();
    lastSocket().simulateOpen();
    lastSocket().send({ id: "e-7", event: "heartbeat", data: heartbeat("gw-1", 7) });
    lastSocket().simulateClose(CLOSE_CODES.token_expired);
    await settle();
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toContain("Failed to fetch");
    expect(FakeWebSocket.instances).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(3000);
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(lastSocket().url).toBe("wss://gw.test/api/realtime/ws?token=tok-3&lastEventId=e-7");
    lastSocket().simulateOpen();
    expect(states).toEqual(["connecting", "open", "reconnecting", "open"]);
  });

  it.each([
    ["a network failure", networkFailure, "Failed to fetch"],
    ["a 401", () => refusal(401, "invalid_api_key"), "401"],
  ])("falls back to the backoff path when the renewal meets %s", async (_name, failure, message) => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const fetchImpl = scriptedFetch(() => grantResponse("tok-1", 60_000), failure, failure, () => grantResponse("tok-4", 60_000));
    const { client, states } = makeClient({ fetchImpl });
    const first = await startOpen(client);
    first.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1), "e-1");
    await vi.advanceTimersByTimeAsync(54_000);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toContain("token renewal failed");
    expect(client.lastError).toContain(message);
    expect(first.closed).toBe(true);

    // Attempt 0 (3 s) fails again, attempt 1 waits 6 s: the renewal counted as a failure.
    await vi.advanceTimersByTimeAsync(3000);
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(5999);
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchImpl).toHaveBeenCalledTimes(4);
    expect(lastSource().url).toBe(`${BASE}/api/realtime/events?token=tok-4&lastEventId=e-1`);
    lastSource().simulateOpen();
    expect(states).toEqual(["connecting", "open", "reconnecting", "open"]);
  });

  it("does not count a renewal as a failure: the backoff afterwards starts from the floor", async () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { client } = makeClient({ transport: "ws", fetchImpl: tokenFetch(10 * 60_000) });
    client.start();
    await settle();
    lastSocket().simulateOpen();
    // Open but never healthy (no heartbeat), so nothing resets the attempt count but itself.
    lastSocket().simulateClose(CLOSE_CODES.token_expired);
    await settle();
    lastSocket().simulateOpen();
    lastSocket().simulateClose(CLOSE_CODES.token_expired);
    await settle();
    lastSocket().simulateOpen();
    lastSocket().simulateClose(1006);
    await vi.advanceTimersByTimeAsync(2999);
    expect(FakeWebSocket.instances).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(4);
  });

  it("shows reconnecting when a handover has not opened within 2 s", async () => {
    const { client, states } = makeClient({ fetchImpl: tokenFetch(60_000) });
    await startOpen(client);
    await vi.advanceTimersByTimeAsync(54_000);
    const second = lastSource();
    expect(FakeEventSource.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1999);
    expect(client.state).toBe("open");
    await vi.advanceTimersByTimeAsync(1);
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toBeNull();
    second.simulateOpen();
    expect(states).toEqual(["connecting", "open", "reconnecting", "open"]);
  });

  it("clears the renewal timer on stop, and ignores a renewal answered after stop", async () => {
    const idle = makeClient({ fetchImpl: tokenFetch(60_000) });
    await startOpen(idle.client);
    idle.client.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(idle.fetchImpl).toHaveBeenCalledTimes(1);
    expect(FakeEventSource.instances).toHaveLength(1);

    FakeEventSource.instances = [];
    const { fetchImpl, release } = deferredFetch();
    const { client, states } = makeClient({ fetchImpl });
    client.start();
    release(grantResponse("tok-1", 60_000));
    await settle();
    lastSource().simulateOpen();
    await vi.advanceTimersByTimeAsync(54_000);
    expect(fetchImpl).toHaveBeenCalledTimes(2); // the renewal is under way
    client.stop();
    release(grantResponse("tok-2", 60_000));
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(client.state).toBe("closed");
    expect(states).toEqual(["connecting", "open", "closed"]);
  });

  it("clears the renewal timer when the connection fails and arms a new one when it reopens", async () => {
    const { client, fetchImpl } = makeClient({ fetchImpl: tokenFetch(60_000) });
    const source = await startOpen(client);
    await vi.advanceTimersByTimeAsync(10_000);
    source.simulateError();
    await vi.advanceTimersByTimeAsync(3000); // reconnects with tok-1 (41 s before its renewal)
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    // Not opened yet: no renewal runs for a connection that is not there.
    await vi.advanceTimersByTimeAsync(40_999);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    lastSource().simulateOpen();
    await vi.advanceTimersByTimeAsync(1); // 54 s after tok-1 was minted
    expect(fetchImpl).toHaveBeenCalledTimes(2);
  });

  it.each([
    // The gateway's clock an hour ahead: expiresAt alone would mean 61 minutes of life.
    ["the local clock runs behind", 3_660_000, 54_000],
    // The clocks agree and the gateway rounded the issue time down: 55 s left of a 60 s TTL.
    ["expiresAt is sooner than the TTL", 55_000, 49_500],
  ])("renews by the shorter of expiresAt and expiresInSeconds when %s", async (_name, expiresInMs, renewsAtMs) => {
    const fetchImpl = vi.fn<typeof fetch>(async () => {
      const expiresAt = new Date(Date.now() + expiresInMs).toISOString();
      return new Response(JSON.stringify({ token: "tok", expiresAt, expiresInSeconds: 60 }), { status: 200 });
    });
    const { client } = makeClient({ fetchImpl });
    await startOpen(client);
    await vi.advanceTimersByTimeAsync(renewsAtMs - 1);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
  });

  it("renews a getToken grant ahead of expiry; without a known expiry it waits for the gateway", async () => {
    let issued = 0;
    const getToken = vi.fn(async () => {
      issued += 1;
      return { token: `own-${issued}`, expiresAt: issued === 1 ? new Date(Date.now() + 60_000).toISOString() : "later" };
    });
    const { client, fetchImpl } = makeClient({ apiKey: undefined, getToken, transport: "ws" });
    client.start();
    await settle();
    lastSocket().simulateOpen();
    await vi.advanceTimersByTimeAsync(54_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(lastSocket().url).toContain("token=own-2");
    lastSocket().simulateOpen();
    lastSocket().send({ id: "e-1", event: "heartbeat", data: heartbeat() });
    // "later" is no time: nothing is scheduled, and the gateway's 4001 is what renews it.
    await vi.advanceTimersByTimeAsync(30_000);
    lastSocket().send({ id: "e-2", event: "heartbeat", data: heartbeat() });
    expect(getToken).toHaveBeenCalledTimes(2);
    lastSocket().simulateClose(CLOSE_CODES.token_expired);
    await settle();
    expect(getToken).toHaveBeenCalledTimes(3);
    expect(lastSocket().url).toContain("token=own-3");
    expect(lastSocket().url).toContain("lastEventId=e-2");
    expect(fetchImpl).not.toHaveBeenCalled();
  });
});

// ---- the resume cursor ----

describe("resume cursor", () => {
  it("passes the last non-empty lastEventId on reconnect", async () => {
    const { client } = makeClient({ channels: ["orders"] });
    const source = await startOpen(client);
    expect(source.url).not.toContain("lastEventId");

    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 5), "1795366240958-5");
    source.emit("heartbeat", heartbeat("gw-1", 5), ""); // no id: keeps the cursor
    source.simulateError();
    await vi.advanceTimersByTimeAsync(3000);
    expect(lastSource().url).toBe(
      `${BASE}/api/realtime/events?token=tok-1&channels=orders&lastEventId=1795366240958-5`,
    );
  });

  it("takes the cursor from heartbeats and resets too", async () => {
    const { client } = makeClient();
    const source = await startOpen(client);
    source.emit("heartbeat", heartbeat("gw-1", 9), "1795366240958-9");
    source.emit("reset", { reason: "stream_recreated" }, "1795366299999-0");
    source.simulateError();
    await vi.advanceTimersByTimeAsync(3000);
    expect(lastSource().url).toContain("lastEventId=1795366299999-0");
  });
});

// ---- frames, dedup, reset ----

describe("frames", () => {
  it("unpacks a batch: onFrame once, on() once per event", async () => {
    const { client } = makeClient();
    const frames: RealtimeFrame[] = [];
    const inventory: SequencedEvent[] = [];
    const all: SequencedEvent[] = [];
    const orders: SequencedEvent[] = [];
    client.onFrame((f) => frames.push(f));
    client.on("INVENTORY_CHANGE", (e) => inventory.push(e));
    client.on("*", (e) => all.push(e));
    client.on("ORDER_RECEIVED", (e) => orders.push(e));
    const source = await startOpen(client);
    source.emit("heartbeat", heartbeat()); // live from here: frames are not history

    const events = [event("INVENTORY_CHANGE", 10), event("INVENTORY_CHANGE", 11), event("INVENTORY_CHANGE", 12)];
    source.emit("INVENTORY_CHANGE", { ...batch("INVENTORY_CHANGE", events, 37), truncated: true });

    expect(frames).toEqual([{ type: "INVENTORY_CHANGE", batch: true, count: 37, events }]);
    expect(inventory.map((e) => e.seq)).toEqual([10, 11, 12]);
    expect(all.map((e) => e.seq)).toEqual([10, 11, 12]);
    expect(orders).toEqual([]);
    expect(client.lastEvent?.seq).toBe(12);
    expect(client.lastEventAt?.toISOString()).toBe("2026-11-22T10:00:00.000Z");
  });

  it("delivers a single event as a frame of count 1", async () => {
    const { client } = makeClient();
    const frames: RealtimeFrame[] = [];
    client.onFrame((f) => frames.push(f));
    const source = await startOpen(client);
    source.emit("heartbeat", heartbeat()); // live from here: frames are not history
    const order = event("ORDER_RECEIVED", 3);
    source.emit("ORDER_RECEIVED", order);
    expect(frames).toEqual([{ type: "ORDER_RECEIVED", batch: false, count: 1, events: [order] }]);
  });

  it("drops duplicates by seq, not by a high-water mark", async () => {
    const { client } = makeClient();
    const frames: RealtimeFrame[] = [];
    const seqs: number[] = [];
    client.onFrame((f) => frames.push(f));
    client.on("*", (e) => seqs.push(e.seq));
    const source = await startOpen(client);
    source.emit("heartbeat", heartbeat()); // live from here: frames are not history

    // Debounce held the inventory batch back: the order with seq 3 comes first.
    source.emit("INVENTORY_CHANGE", event("INVENTORY_CHANGE", 1));
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 3));
    source.emit("INVENTORY_CHANGE", batch("INVENTORY_CHANGE", [event("INVENTORY_CHANGE", 2, "p_a")]));
    expect(seqs).toEqual([1, 3, 2]);

    // A replay after a reconnect repeats some of them.
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 3)); // whole single frame duplicate: no onFrame
    const mixed = batch("INVENTORY_CHANGE", [event("INVENTORY_CHANGE", 2, "p_a"), event("INVENTORY_CHANGE", 4, "p_b")], 5);
    source.emit("INVENTORY_CHANGE", mixed);

    expect(seqs).toEqual([1, 3, 2, 4]);
    expect(frames).toHaveLength(4);
    expect(frames[3]).toEqual({
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 5,
      events: [event("INVENTORY_CHANGE", 4, "p_b")],
    });
  });

  it("dedups across a reconnect", async () => {
    const { client } = makeClient();
    const seqs: number[] = [];
    client.on("*", (e) => seqs.push(e.seq));
    const first = await startOpen(client);
    first.emit("PRICE_CHANGE", event("PRICE_CHANGE", 7), "e-7");
    first.simulateError();
    await vi.advanceTimersByTimeAsync(3000);
    const second = lastSource();
    second.simulateOpen();
    second.emit("PRICE_CHANGE", batch("PRICE_CHANGE", [event("PRICE_CHANGE", 7), event("PRICE_CHANGE", 8)]), "e-8");
    expect(seqs).toEqual([7, 8]);
  });

  it("ignores frames it cannot parse", async () => {
    const { client } = makeClient();
    const frames: RealtimeFrame[] = [];
    client.onFrame((f) => frames.push(f));
    const source = await startOpen(client);
    source.emit("ORDER_RECEIVED", { nonsense: true });
    source.emit("LISTING_UPDATE", "not an object");
    expect(frames).toEqual([]);
    expect(client.state).toBe("open");
  });

  it("keeps delivering when a listener throws, and rethrows outside the client", async () => {
    const { client } = makeClient();
    const seen: number[] = [];
    client.on("*", () => {
      throw new Error("boom");
    });
    client.on("*", (e) => seen.push(e.seq));
    const source = await startOpen(client);
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1));
    expect(seen).toEqual([1]);
    expect(client.state).toBe("open");
    expect(() => vi.advanceTimersByTime(0)).toThrow("boom");
  });

  it("unsubscribes listeners", async () => {
    const { client } = makeClient();
    const seen: number[] = [];
    const frames: RealtimeFrame[] = [];
    const off = client.on("ORDER_RECEIVED", (e) => seen.push(e.seq));
    const offFrame = client.onFrame((f) => frames.push(f));
    const source = await startOpen(client);
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1));
    off();
    offFrame();
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 2));
    expect(seen).toEqual([1]);
    expect(frames).toHaveLength(1);
  });

  it("a source gap is a reset like any other: the listeners hear it and the stream carries on", async () => {
    const { client } = makeClient();
    const reasons: ResetCause[] = [];
    const seqs: number[] = [];
    client.onReset((reason) => reasons.push(reason));
    client.on("*", (e) => seqs.push(e.seq));
    const source = await startOpen(client);

    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 7));
    source.emit("reset", { reason: "source_gap" }, "1795366240958-9");
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 10));

    expect(reasons).toEqual(["source_gap"]);
    expect(seqs).toEqual([7, 10]);
    expect(client.state).toBe("open");
  });

  it("on reset: calls the listeners, clears dedup and stays open", async () => {
    const { client } = makeClient();
    const reasons: ResetCause[] = [];
    const seqs: number[] = [];
    client.onReset((reason) => reasons.push(reason));
    client.on("*", (e) => seqs.push(e.seq));
    const source = await startOpen(client);

    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1));
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 2));
    source.emit("reset", { reason: "stream_recreated" }, "1795366299999-0");
    // The recreated stream starts its seqs again.
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1));

    expect(reasons).toEqual(["stream_recreated"]);
    expect(seqs).toEqual([1, 2, 1]);
    expect(client.state).toBe("open");
    expect(source.closed).toBe(false);
  });
});

// ---- heartbeats and the watchdog ----

describe("heartbeat", () => {
  it("records the heartbeat and instance", async () => {
    const { client } = makeClient();
    const source = await startOpen(client);
    source.emit("heartbeat", heartbeat("gw-2", 41), "e-41");
    expect(client.lastHeartbeat).toEqual(heartbeat("gw-2", 41));
    expect(client.instance).toBe("gw-2");
    expect(client.lastEvent).toBeNull();
  });

  it("tells onHeartbeat listeners of every heartbeat, once the fields hold it", async () => {
    for (const transport of ["sse", "ws"] as const) {
      const { client } = makeClient({ transport });
      client.start();
      await settle();
      const heard: string[] = [];
      const off = client.onHeartbeat((h) => heard.push(`${h.instance}/${h.seq}/${client.instance}/${client.lastHeartbeat?.seq}`));
      const send = (h: ReturnType<typeof heartbeat>, id: string): void => {
        if (transport === "ws") lastSocket().send({ event: "heartbeat", id, data: h });
        else lastSource().emit("heartbeat", h, id);
      };
      if (transport === "ws") lastSocket().simulateOpen();
      else lastSource().simulateOpen();
      send(heartbeat("gw-1", 1), "e-1");
      send(heartbeat("gw-2", 2, true), "e-2");
      off();
      send(heartbeat("gw-2", 3), "e-3");
      expect(heard).toEqual(["gw-1/1/gw-1/1", "gw-2/2/gw-2/2"]);
      client.stop();
    }
  });

  it("reconnects after two heartbeat intervals of silence", async () => {
    const { client, states } = makeClient({ heartbeatIntervalMs: 30_000 });
    const source = await startOpen(client);

    await vi.advanceTimersByTimeAsync(59_000);
    source.emit("heartbeat", heartbeat()); // alive: the window starts again
    await vi.advanceTimersByTimeAsync(59_000);
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 1));
    await vi.advanceTimersByTimeAsync(59_999);
    expect(client.state).toBe("open");
    expect(source.closed).toBe(false);

    await vi.advanceTimersByTimeAsync(1);
    expect(client.state).toBe("reconnecting");
    expect(source.closed).toBe(true);
    expect(client.lastError).toMatch(/no message/);

    await vi.advanceTimersByTimeAsync(3000);
    expect(FakeEventSource.instances).toHaveLength(2);
    lastSource().simulateOpen();
    expect(states).toEqual(["connecting", "open", "reconnecting", "open"]);
  });

  it("honours a custom interval", async () => {
    const { client } = makeClient({ heartbeatIntervalMs: 1000 });
    await startOpen(client);
    await vi.advanceTimersByTimeAsync(1999);
    expect(client.state).toBe("open");
    await vi.advanceTimersByTimeAsync(1);
    expect(client.state).toBe("reconnecting");
  });

  it("counts a reset as a sign of life", async () => {
    const { client } = makeClient({ heartbeatIntervalMs: 1000 });
    const source = await startOpen(client);
    await vi.advanceTimersByTimeAsync(1500);
    source.emit("reset", { reason: "cursor_expired" });
    await vi.advanceTimersByTimeAsync(1500);
    expect(client.state).toBe("open");
  });
});

// ---- WebSocket transport ----

describe("WebSocket transport", () => {
  it("builds a wss:// URL without the API key and parses {id, event, data}", async () => {
    const { client, states } = makeClient({ transport: "ws", channels: ["inventory"] });
    const seqs: number[] = [];
    const frames: RealtimeFrame[] = [];
    const reasons: ResetCause[] = [];
    client.on("*", (e) => seqs.push(e.seq));
    client.onFrame((f) => frames.push(f));
    client.onReset((r) => reasons.push(r));
    client.start();
    await settle();

    const socket = lastSocket();
    expect(FakeEventSource.instances).toHaveLength(0);
    expect(socket.url).toBe("wss://gw.test/api/realtime/ws?token=tok-1&channels=inventory");
    expect(socket.url).not.toContain(API_KEY);
    socket.simulateOpen();
    expect(client.state).toBe("open");

    socket.send({ event: "subscribed", data: { channels: ["inventory"] } });
    socket.send({ event: "pong", data: { time: "2026-11-22T10:00:00.000Z" } });
    socket.send({ event: "error", data: { error: "bad_frame", message: "nope" } });
    socket.send({ id: "e-1", event: "INVENTORY_CHANGE", data: event("INVENTORY_CHANGE", 1) });
    socket.send({
      id: "e-3",
      event: "INVENTORY_CHANGE",
      data: batch("INVENTORY_CHANGE", [event("INVENTORY_CHANGE", 1), event("INVENTORY_CHANGE", 3)]),
    });
    socket.send({ id: "e-3", event: "heartbeat", data: heartbeat("gw-3", 3) });
    socket.send({ id: "e-9", event: "reset", data: { reason: "slow_client" } });

    expect(seqs).toEqual([1, 3]);
    expect(frames.map((f) => [f.batch, f.events.length])).toEqual([
      [false, 1],
      [true, 1],
    ]);
    expect(client.instance).toBe("gw-3");
    expect(reasons).toEqual(["slow_client"]);

    socket.simulateClose(1013);
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toContain("1013");
    await vi.advanceTimersByTimeAsync(3000);
    const next = lastSocket();
    expect(next).not.toBe(socket);
    expect(next.url).toBe("wss://gw.test/api/realtime/ws?token=tok-1&channels=inventory&lastEventId=e-9");
    next.simulateOpen();
    expect(states).toEqual(["connecting", "open", "reconnecting", "open"]);
  });

  it("maps http:// to ws:// and an empty baseUrl to the page's origin", async () => {
    const plain = makeClient({ transport: "ws", baseUrl: "http://localhost:8080/" });
    plain.client.start();
    await settle();
    expect(lastSocket().url).toBe("ws://localhost:8080/api/realtime/ws?token=tok-1");
    plain.client.stop();

    vi.stubGlobal("location", { protocol: "https:", host: "app.example", href: "https://app.example/" });
    const sameOrigin = makeClient({ transport: "ws", baseUrl: "" });
    sameOrigin.client.start();
    await settle();
    expect(lastSocket().url).toBe("wss://app.example/api/realtime/ws?token=tok-1");
    expect(sameOrigin.fetchImpl.mock.calls[0]?.[0]).toBe("/api/realtime/token");
  });

  it("reconnects once when an error is followed by a close", async () => {
    vi.spyOn(Math, "random").mockReturnValue(1); // the longest backoff: 3 s
    const { client } = makeClient({ transport: "ws" });
    client.start();
    await settle();
    const socket = lastSocket();
    socket.simulateOpen();
    socket.send({ id: "e-1", event: "heartbeat", data: heartbeat() });
    socket.simulateClose(CLOSE_CODES.service_restart); // gateway draining
    socket.simulateClose(1006);
    expect(socket.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(3000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("applies the watchdog to WebSocket connections too", async () => {
    const { client } = makeClient({ transport: "ws", heartbeatIntervalMs: 1000 });
    client.start();
    await settle();
    const socket = lastSocket();
    socket.simulateOpen();
    await vi.advanceTimersByTimeAsync(2000);
    expect(client.state).toBe("reconnecting");
    expect(socket.closed).toBe(true);
  });
});

// ---- backfill, history frames, afterSeq, degraded ----

describe("backfill and history", () => {
  it("asks for backfill on the first connection only; a reconnect resumes from the cursor", async () => {
    const { client } = makeClient({ backfill: 200 });
    const source = await startOpen(client);
    expect(source.url).toBe(`${BASE}/api/realtime/events?token=tok-1&backfill=200`);
    source.emit("heartbeat", heartbeat("gw-1", 9), "1795366240958-9");
    source.simulateError();
    await vi.advanceTimersByTimeAsync(5000);
    expect(lastSource().url).toContain("lastEventId=1795366240958-9");
    expect(lastSource().url).not.toContain("backfill");
  });

  it("passes since= and a starting cursor", async () => {
    const since = makeClient({ since: "15m" });
    expect((await startOpen(since.client)).url).toContain("since=15m");
    const resumed = makeClient({ lastEventId: "1795366240958-4", backfill: 50 });
    const url = (await startOpen(resumed.client)).url;
    expect(url).toContain("lastEventId=1795366240958-4");
    expect(url).not.toContain("backfill");
  });

  it("marks frames before the first heartbeat as history and gives each frame the cursor before it", async () => {
    const { client } = makeClient({ backfill: 10 });
    const frames: RealtimeFrame[] = [];
    client.onFrame((frame) => frames.push(frame));
    const source = await startOpen(client);
    // Only the last replayed frame carries the cursor.
    source.emit("ORDER_RECEIVED", batch("ORDER_RECEIVED", [event("ORDER_RECEIVED", 5)]), "");
    source.emit("INVENTORY_CHANGE", batch("INVENTORY_CHANGE", [event("INVENTORY_CHANGE", 7)], 3), "1795366240958-7");
    source.emit("heartbeat", heartbeat("gw-1", 7, true), "1795366240958-7");
    source.emit("ORDER_RECEIVED", event("ORDER_RECEIVED", 8), "1795366240958-8");
    expect(frames.map((f) => [f.history ?? false, f.afterSeq])).toEqual([
      [true, undefined],
      [true, undefined],
      [false, 7],
    ]);
    expect(client.lastHeartbeat?.degraded).toBe(true);
  });
});

// ---- storms: a crowd dropped or refused together comes back spread ----

describe("reconnecting in a storm", () => {
  it("comes back from a dropped connection after a random part of the first window, not after a fixed wait", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.25);
    const { client } = makeClient();
    const source = await startOpen(client);
    source.emit("heartbeat", heartbeat("gw-1", 4), "1795366240958-4");
    source.simulateError(); // the gateway was killed
    await vi.advanceTimersByTimeAsync(749);
    expect(FakeEventSource.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeEventSource.instances).toHaveLength(2);
    expect(lastSource().url).toContain("lastEventId=1795366240958-4");
  });

  it("spreads a crowd dropped at the same instant over the window", async () => {
    const draws = [0.1, 0.5, 0.9];
    const clients = draws.map(() => makeClient().client);
    for (const client of clients) client.start();
    await settle();
    const sources = [...FakeEventSource.instances];
    for (const source of sources) {
      source.simulateOpen();
      source.emit("heartbeat", heartbeat());
    }
    const random = vi.spyOn(Math, "random");
    for (const draw of draws) random.mockReturnValueOnce(draw);
    for (const source of sources) source.simulateError();
    const reconnectedAt: number[] = [];
    for (let ms = 0; ms <= 3000 && reconnectedAt.length < draws.length; ms += 100) {
      const before = FakeEventSource.instances.length;
      await vi.advanceTimersByTimeAsync(100);
      for (let i = before; i < FakeEventSource.instances.length; i += 1) reconnectedAt.push(ms + 100);
    }
    expect(reconnectedAt).toEqual([300, 1500, 2700]);
  });

  // The gateway closes each WebSocket at its own moment in the drain window (1012); the client
  // adds its own jitter, as it does for an SSE stream that ends with a fresh retry:.
  it("reconnects after a drain close (1012) with jitter and the cursor", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { client } = makeClient({ transport: "ws" });
    client.start();
    await settle();
    const socket = lastSocket();
    socket.simulateOpen();
    socket.send({ id: "1795366240958-7", event: "heartbeat", data: heartbeat("gw-1", 7) });
    socket.simulateClose(CLOSE_CODES.service_restart);
    expect(client.lastError).toContain("1012 service_restart");
    await vi.advanceTimersByTimeAsync(1499);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(lastSocket().url).toContain("lastEventId=1795366240958-7");
  });

  // A browser never sees the status or headers of a refused EventSource or WebSocket
  // handshake; the token request is a fetch, and its Retry-After is honoured.
  it("waits at least the Retry-After of a refused token request", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    let calls = 0;
    const fetchImpl = vi.fn<typeof fetch>(async () => {
      calls += 1;
      if (calls === 1) {
        return new Response(JSON.stringify({ error: "too_many_unauthenticated", message: "retry shortly" }), {
          status: 503,
          headers: { "Content-Type": "application/json", "Retry-After": "4" },
        });
      }
      return grantResponse(`tok-${calls}`, 10 * 60_000);
    });
    const { client } = makeClient({ fetchImpl });
    client.start();
    await settle();
    expect(client.state).toBe("reconnecting");
    expect(client.lastError).toContain("HTTP 503: too_many_unauthenticated");
    await vi.advanceTimersByTimeAsync(3999); // the backoff alone (random 0) would be 0 ms
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(lastSource().url).toContain("token=tok-2");
  });

  it("honours a retryAfterMs on an error thrown by getToken", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    let calls = 0;
    const getToken = vi.fn(async () => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error("backend busy"), { retryAfterMs: 2000 });
      return { token: "own-1", expiresAt: new Date(Date.now() + 600_000).toISOString() };
    });
    const { client } = makeClient({ getToken, apiKey: undefined });
    client.start();
    await settle();
    await vi.advanceTimersByTimeAsync(1999);
    expect(getToken).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(getToken).toHaveBeenCalledTimes(2);
  });
});
