// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import { renderToString } from "react-dom/server";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { QueryClientProvider } from "@tanstack/react-query";
import type { ConnectionState } from "../client/types";
import { ConnectionStatus } from "./index";
import { RealtimeProvider } from "./RealtimeProvider";
import { FakeRealtimeClient, event, single, testQueryClient } from "./fakeClient.test-helper";

afterEach(cleanup);

function renderStatus(state: ConnectionState) {
  const client = new FakeRealtimeClient();
  client.state = state;
  client.heartbeat("gw-2");
  render(
    <QueryClientProvider client={testQueryClient()}>
      <RealtimeProvider client={client}>
        <header>
          <ConnectionStatus />
        </header>
      </RealtimeProvider>
    </QueryClientProvider>,
  );
  return client;
}

const tooltip = (): HTMLElement => screen.getByRole("tooltip", { hidden: true });

describe("ConnectionStatus", () => {
  it.each<[ConnectionState, string, string]>([
    ["open", "Live", "rgb(22, 163, 74)"],
    ["connecting", "Connecting", "rgb(245, 158, 11)"],
    ["reconnecting", "Reconnecting", "rgb(245, 158, 11)"],
    ["closed", "Disconnected", "rgb(220, 38, 38)"],
  ])("when %s says %s in text, not just colour", (state, label, colour) => {
    renderStatus(state);
    const status = screen.getByRole("status");
    expect(status.getAttribute("data-state")).toBe(state);
    expect(status.textContent).toBe(label);
    expect(status.getAttribute("aria-label")).toBe(`${label} · gw-2 · no events yet`);
    const dot = status.querySelector<HTMLElement>("[aria-hidden='true']");
    expect(dot?.style.background).toBe(colour);
  });

  it("names the state, instance and time of the last event", () => {
    const client = renderStatus("open");
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")), new Date(2026, 10, 22, 10, 42, 7));
    const status = screen.getByRole("status");
    expect(status.getAttribute("aria-label")).toBe("Live · gw-2 · last event 10:42:07");
    expect(tooltip().textContent).toBe("Live · gw-2 · last event 10:42:07");
  });

  it("follows state changes", () => {
    const client = renderStatus("open");
    client.setState("reconnecting");
    expect(screen.getByRole("status").getAttribute("data-state")).toBe("reconnecting");
    expect(screen.getByRole("status").textContent).toBe("Reconnecting");
    client.setState("closed");
    expect(screen.getByRole("status").getAttribute("data-state")).toBe("closed");
  });

  it("is focusable and describes itself with the tooltip, shown on focus", () => {
    renderStatus("open");
    const status = screen.getByRole("status");
    expect(status.tabIndex).toBe(0);
    expect(status.getAttribute("aria-describedby")).toBe(tooltip().id);
    expect(tooltip().hidden).toBe(true);
    act(() => status.focus());
    expect(tooltip().hidden).toBe(false);
    fireEvent.keyDown(status, { key: "Escape" });
    expect(tooltip().hidden).toBe(true);
    act(() => status.blur());
    act(() => status.focus());
    expect(tooltip().hidden).toBe(false);
    act(() => status.blur());
    expect(tooltip().hidden).toBe(true);
  });

  it("shows the tooltip on hover", () => {
    renderStatus("reconnecting");
    const wrapper = screen.getByRole("status").parentElement as HTMLElement;
    fireEvent.mouseEnter(wrapper);
    expect(tooltip().hidden).toBe(false);
    expect(tooltip().textContent).toBe("Reconnecting · gw-2 · no events yet");
    fireEvent.mouseLeave(wrapper);
    expect(tooltip().hidden).toBe(true);
  });

  it("says connecting in the server render of a provider given options", () => {
    // No effect runs on the server, so no client exists yet; the header must still say the
    // page is about to connect (and the browser's first render must match it).
    const html = renderToString(
      <QueryClientProvider client={testQueryClient()}>
        <RealtimeProvider options={{ baseUrl: "https://rakuda.example" }}>
          <ConnectionStatus />
        </RealtimeProvider>
      </QueryClientProvider>,
    );
    expect(html).toContain('data-state="connecting"');
    expect(html).toContain('aria-label="Connecting · no events yet"');
  });

  it("says closed with neither options nor a client", () => {
    render(
      <QueryClientProvider client={testQueryClient()}>
        <RealtimeProvider>
          <ConnectionStatus />
        </RealtimeProvider>
      </QueryClientProvider>,
    );
    expect(screen.getByRole("status").getAttribute("data-state")).toBe("closed");
  });
});
