// The real stack for end-to-end tests: private redis-server and nats-server on free ports,
// the bridge and the gateway binaries (target/debug), the gateway serving the built dashboard.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "target", "debug");

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function which(binary) {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/bin", "/usr/local/bin"])) {
    const candidate = path.join(dir, binary);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`${binary} is not installed: run ./ops/bootstrap.sh`);
}

async function waitUntil(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A child process with its output in a log file; killed by stop(). */
class Proc {
  constructor(name, command, args, env, dir) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.env = env;
    this.log = path.join(dir, `${name}.log`);
    this.start();
  }
  start() {
    const out = fs.openSync(this.log, "a");
    this.child = spawn(this.command, this.args, {
      env: { PATH: process.env.PATH, RUST_LOG: "warn", ...this.env },
      stdio: ["ignore", out, out],
    });
  }
  kill(signal = "SIGKILL") {
    if (this.child && this.child.exitCode === null) this.child.kill(signal);
  }
  async stop() {
    this.kill();
    if (this.child && this.child.exitCode === null) {
      await new Promise((resolve) => this.child.once("exit", resolve));
    }
  }
}

export class Stack {
  static async start({ apiKey, gatewayEnv = {} }) {
    const stack = new Stack();
    stack.dir = fs.mkdtempSync(path.join(os.tmpdir(), "rakuda-e2e-"));
    stack.apiKey = apiKey;
    stack.redisPort = await freePort();
    stack.natsPort = await freePort();
    stack.gatewayPort = await freePort();
    stack.redisUrl = `redis://127.0.0.1:${stack.redisPort}`;
    stack.procs = [];
    stack.procs.push(
      new Proc("redis", which("redis-server"), ["--port", String(stack.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", stack.dir], {}, stack.dir),
    );
    stack.procs.push(
      new Proc("nats", which("nats-server"), ["-a", "127.0.0.1", "-p", String(stack.natsPort), "-js", "-sd", path.join(stack.dir, "js")], {}, stack.dir),
    );
    await waitUntil("redis", () => portOpen(stack.redisPort));
    await waitUntil("nats", () => portOpen(stack.natsPort));
    const common = { REDIS_URL: stack.redisUrl, NATS_URL: `nats://127.0.0.1:${stack.natsPort}` };
    stack.bridge = new Proc("bridge", path.join(BIN, "rakuda-bridge"), [], { ...common, BRIDGE_METRICS_ADDR: `127.0.0.1:${await freePort()}` }, stack.dir);
    stack.procs.push(stack.bridge);
    stack.gateway = new Proc(
      "gateway",
      path.join(BIN, "rakuda-gateway"),
      [],
      {
        ...common,
        API_KEY: apiKey,
        TOKEN_SECRET: "e2e-token-secret-0123456789abcdef",
        GATEWAY_ADDR: `127.0.0.1:${stack.gatewayPort}`,
        GATEWAY_DASHBOARD_DIR: path.join(ROOT, "web", "dist"),
        GATEWAY_DRAIN_WINDOW: "0s",
        ...gatewayEnv,
      },
      stack.dir,
    );
    stack.procs.push(stack.gateway);
    await stack.waitForGateway();
    return stack;
  }

  get url() {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  async waitForGateway() {
    await waitUntil("gateway /readyz", async () => (await fetch(`${this.url}/readyz`)).ok);
  }

  /** Kills the gateway as a crash would. */
  async killGateway() {
    await this.gateway.stop();
  }

  async restartGateway() {
    this.gateway.start();
    await this.waitForGateway();
  }

  async stop() {
    for (const proc of [...this.procs].reverse()) await proc.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export { waitUntil };
