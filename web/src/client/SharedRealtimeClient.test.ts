import { describe, expect, it, vi } from "vitest";
import { browser, until, type FakeConnection } from "./sharedTabs.test-helper";
import type { SharedRealtimeClient } from "./SharedRealtimeClient";
import type { RealtimeFrame } from "./types";

const roles = (tabs: { client: SharedRealtimeClient }[]) => tabs.map((t) => t.client.role).sort();

describe("SharedRealtimeClient", () => {
  it("opens one connection for many tabs and relays its frames to all of them", async () => {
    const { tab, connections } = browser();
    const tabs = [tab(), tab(), tab()];
    // The leader answers each new tab's hello: they know their role before any event.
    await until("one leader, two followers", () => roles(tabs).join() === "follower,follower,leader");
    expect(connections).toHaveLength(1);
    connections[0]?.emit([1, 2], "e-2");
    await until("every tab has the frame", () => tabs.every((t) => t.seqs.length === 2));
    expect(tabs.map((t) => t.seqs)).toEqual([[1, 2], [1, 2], [1, 2]]);
    expect(roles(tabs)).toEqual(["follower", "follower", "leader"]);
    expect(tabs.map((t) => t.client.state)).toEqual(["open", "open", "open"]);
  });

  it("hands a tab that opens later the recent frames, as history", async () => {
    const { tab, connections } = browser();
    const first = tab();
    await until("a leader", () => first.client.role === "leader");
    connections[0]?.emit([1], "e-1");
    const late = tab();
    const frames: RealtimeFrame[] = [];
    late.client.onFrame((frame) => frames.push(frame));
    await until("the catch-up", () => late.seqs.length === 1);
    expect(late.seqs).toEqual([1]);
    expect(frames[0]?.history).toBe(true);
  });

  it("when the leader goes, the next tab resumes from the last cursor and drops what it had", async () => {
    const { tab, connections } = browser();
    const first = tab();
    await until("a leader", () => first.client.role === "leader");
    const second = tab();
    await until("a follower", () => second.client.role === "follower");
    connections[0]?.emit([1, 2, 3], "1795366240958-3");
    await until("the follower has the frame", () => second.seqs.length === 3);
    first.client.stop();
    await until("a second connection", () => connections.length === 2);
    expect(connections[1]?.options.lastEventId).toBe("1795366240958-3");
    expect(second.client.role).toBe("leader");
    // The resume overlaps (at-least-once): 3 again, then 4.
    const frames: RealtimeFrame[] = [];
    second.client.onFrame((frame) => frames.push(frame));
    connections[1]?.emit([3, 4], "1795366240958-4");
    expect(second.seqs).toEqual([1, 2, 3, 4]);
    expect(frames[0]?.count).toBe(1);
  });

  it("tells every tab's onHeartbeat of the leader's heartbeats, once each", async () => {
    const { tab, connections } = browser();
    const first = tab();
    await until("a leader", () => first.client.role === "leader");
    const second = tab();
    await until("a follower", () => second.client.role === "follower");
    const heard: string[][] = [[], []];
    first.client.onHeartbeat((h) => heard[0]?.push(`${h.instance}/${h.seq}`));
    second.client.onHeartbeat((h) => heard[1]?.push(`${h.instance}/${h.seq}`));
    connections[0]?.beat("gw-1", 1);
    connections[0]?.beat("gw-1", 2);
    await until("the follower heard both", () => heard[1]?.length === 2);
    // A status the leader sends (here, for a tab that joins) repeats its last heartbeat: the
    // tabs that heard it are not told again.
    const third = tab();
    await until("a second follower", () => third.client.role === "follower");
    expect(heard).toEqual([
      ["gw-1/1", "gw-1/2"],
      ["gw-1/1", "gw-1/2"],
    ]);
    expect(second.client.lastHeartbeat).toEqual(connections[0]?.lastHeartbeat);
    expect(second.client.instance).toBe("gw-1");
  });

  it("tells a tab that joins the leader's last heartbeat at once, not at the next one", async () => {
    const { tab, connections } = browser();
    const first = tab();
    await until("a leader", () => first.client.role === "leader");
    connections[0]?.beat("gw-3", 7);
    const late = tab();
    const heard: number[] = [];
    late.client.onHeartbeat((h) => heard.push(h.seq));
    await until("the late tab heard the last heartbeat", () => heard.length === 1);
    expect(heard).toEqual([7]);
    expect(late.client.instance).toBe("gw-3");
  });

  it("stops cleanly: no connection, state closed", async () => {
    const { tab, connections } = browser();
    const only = tab();
    await until("a connection", () => connections.length === 1);
    const stop = vi.spyOn(connections[0] as FakeConnection, "stop");
    only.client.stop();
    expect(stop).toHaveBeenCalled();
    expect(only.client.state).toBe("closed");
  });
});
