// POST /api/realtime-token: mints a short-lived realtime token for the signed-in user.
// The gateway's API key stays on the server (REALTIME_API_KEY, no NEXT_PUBLIC_ prefix, so it
// is never bundled for the browser); the browser only ever sees a token that expires and is
// limited to the channels asked for here.

/** What the gateway's POST /api/realtime/token answers. */
interface GatewayToken {
  token: string;
  expiresAt: string;
  channels: string[];
}

// The channels this app's pages show; a token cannot be widened later.
const CHANNELS = ["inventory", "orders", "pricing", "listings"];

export async function POST(request: Request): Promise<Response> {
  // Authenticate the caller with your app's session here (cookies/headers of `request`) and
  // answer 401 otherwise: whoever can call this route can read the realtime stream. Omitted
  // because it is app-specific.

  const apiKey = process.env.REALTIME_API_KEY;
  // The server may reach the gateway on an internal address; fall back to the public one.
  const gateway = process.env.REALTIME_GATEWAY_URL ?? process.env.NEXT_PUBLIC_REALTIME_URL;
  if (!apiKey || !gateway) {
    return json({ error: "realtime_not_configured" }, 503);
  }

  let upstream: Response;
  try {
    upstream = await fetch(`${gateway.replace(/\/+$/, "")}/api/realtime/token`, {
      method: "POST",
      headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
      body: JSON.stringify({ channels: CHANNELS }),
      cache: "no-store",
    });
  } catch {
    return json({ error: "gateway_unreachable" }, 502);
  }

  if (!upstream.ok) {
    // Pass the gateway's status on (429 and 503 tell the client to back off) but not its
    // body: error details about our API key are not the browser's business.
    const status = upstream.status === 429 || upstream.status === 503 ? upstream.status : 502;
    return json({ error: "token_mint_failed" }, status);
  }

  const grant = (await upstream.json()) as GatewayToken;
  return json({ token: grant.token, expiresAt: grant.expiresAt });
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    // A token is per user and short-lived: no cache may keep or share it.
    headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
  });
}
