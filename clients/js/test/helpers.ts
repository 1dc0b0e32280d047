/**
 * Test helpers: a real Clipwire hub as a child process, tokens, a fault-injecting
 * TCP relay, and an event reader with timeouts. Node-only: the library itself
 * must not import any of this.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";

import {
  type Client,
  type ClientEvent,
  type ClientEventType,
  type ConnectOptions,
  type EventOf,
  type Message,
  type WebSocketConstructor,
  connect,
  decodeFrame,
} from "clipwire-client";

export const SECRET = "js-test-secret-that-is-long-enough-for-hs256";
/** clients/js, from .test-build/test/helpers.js */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO_ROOT = path.resolve(PACKAGE_ROOT, "..", "..");
export const PYTHON = process.env["CLIPWIRE_PYTHON"] ?? path.resolve(PACKAGE_ROOT, "../../.venv/bin/python");

/** Node 20 has no global WebSocket: use the ws package's, as an app on Node 20 would. */
export const WebSocketImpl = ((globalThis as { WebSocket?: unknown }).WebSocket ?? WebSocket) as unknown as WebSocketConstructor;

// ------------------------------------------------------------------ tokens

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT `{sub, exp}` signed with {@link SECRET}, as the application's backend would. */
export function token(user: string, ttlS = 3600, secret = SECRET): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub: user, exp: Math.floor(Date.now() / 1000) + ttlS }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

// ------------------------------------------------------------------ the hub

/** A hub running as a real `clipwire serve` process on a temporary database. */
export class Hub {
  proc: ChildProcess | null = null;
  url = "";
  port = 0;
  log = "";
  private readonly dir: string;
  readonly db: string;

  private constructor(readonly args: string[]) {
    this.dir = mkdtempSync(path.join(tmpdir(), "clipwire-js-"));
    this.db = path.join(this.dir, "hub.db");
  }

  static async start(...args: string[]): Promise<Hub> {
    if (!existsSync(PYTHON)) {
      throw new Error(`no Python for the hub at ${PYTHON}: set CLIPWIRE_PYTHON or create the repo's .venv (scripts/test)`);
    }
    const hub = new Hub(args);
    await hub.launch(0);
    return hub;
  }

  private launch(port: number): Promise<void> {
    const proc = spawn(PYTHON, [
      "-m", "clipwire.server", "serve", "--host", "127.0.0.1", "--port", String(port), "--db", this.db,
      "--dm-policy", "everyone", ...this.args,
    ], {
      cwd: REPO_ROOT,
      env: { ...process.env, CLIPWIRE_SECRET: SECRET, CLIPWIRE_LOG_LEVEL: "WARNING" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    proc.stderr!.on("data", (chunk: Buffer) => {
      this.log += chunk.toString();
    });
    return new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`the hub did not start in 15 s:\n${out}\n${this.log}`)), 15_000);
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the hub exited with ${code}:\n${out}\n${this.log}`));
      });
      proc.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const found = /(ws:\/\/\S+\/ws)/.exec(out);
        if (found && !this.url.startsWith(found[1]!)) {
          clearTimeout(timer);
          this.url = found[1]!;
          this.port = Number(new URL(this.url).port);
          resolve();
        }
      });
    });
  }

  /** SIGKILL: no close frames, no shutdown; clients see 1006. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM: the hub shuts down and closes every connection with 1001. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  /** Start again on the same port and database. */
  async restart(): Promise<void> {
    this.url = "";
    await this.launch(this.port);
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.removeAllListeners("exit");
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(sig);
    await exited;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ a fault proxy

/**
 * A TCP relay in front of a hub. `refuse` closes new connections at once (the
 * client cannot reach the hub), `blackhole` swallows everything the hub sends,
 * `cut()` drops every relayed connection (the client sees 1006).
 */
export class Proxy {
  refuse = false;
  blackhole = false;
  accepted = 0;
  port = 0;
  private readonly links = new Set<[net.Socket, net.Socket]>();
  private readonly server: net.Server;

  constructor(readonly hubPort: number) {
    this.server = net.createServer((client) => this.relay(client));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  private relay(client: net.Socket): void {
    if (this.refuse) {
      client.destroy();
      return;
    }
    this.accepted++;
    const hub = net.connect(this.hubPort, "127.0.0.1");
    const link: [net.Socket, net.Socket] = [client, hub];
    this.links.add(link);
    const end = (): void => {
      this.links.delete(link);
      client.destroy();
      hub.destroy();
    };
    client.on("data", (data) => hub.write(data));
    hub.on("data", (data) => {
      if (!this.blackhole) client.write(data);
    });
    for (const socket of link) {
      socket.on("error", end);
      socket.on("close", end);
    }
  }

  cut(): void {
    for (const [client, hub] of [...this.links]) {
      client.destroy();
      hub.destroy();
    }
    this.links.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ------------------------------------------------------------------ clients and events

/** Fast reconnects and short waits keep the suite quick; production defaults are slower. */
export const FAST: ConnectOptions = {
  backoffInitialMs: 50, backoffMaxMs: 400, requestTimeoutMs: 5000, holeGraceMs: 100, connectTimeoutMs: 3000,
  WebSocketImpl,
};

/** Clients opened in a test, closed after it. */
export class Clients {
  private readonly open: Client[] = [];

  async as(url: string, user: string, options: ConnectOptions = {}): Promise<Client> {
    const client = await connect(url, { ...FAST, token: options.tokenProvider ? undefined : token(user), ...options });
    this.open.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.close()));
  }
}

/** Reads a client's events in order, with timeouts. */
export class Inbox {
  private readonly it: AsyncIterator<ClientEvent>;
  private pending: Promise<IteratorResult<ClientEvent>> | null = null;
  readonly seen: ClientEvent[] = [];

  constructor(client: Client) {
    this.it = client.events();
  }

  /** The next event, or null if none comes within `ms`. */
  async poll(ms: number): Promise<ClientEvent | null> {
    this.pending ??= this.it.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    const result = await Promise.race([this.pending, timeout]);
    clearTimeout(timer);
    if (result === null) return null;
    this.pending = null;
    if (result.done) throw new Error("the event stream ended");
    this.seen.push(result.value);
    return result.value;
  }

  /** The next event of `type` (others are skipped, kept in `seen`). */
  async next<K extends ClientEventType>(type: K, ms = 5000): Promise<EventOf<K>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      const event = left > 0 ? await this.poll(left) : null;
      if (event === null) throw new Error(`no '${type}' event within ${ms} ms; saw ${JSON.stringify(this.seen.map((e) => e.type))}`);
      if (event.type === type) return event as EventOf<K>;
    }
  }

  /** The next `n` messages. */
  async messages(n: number, ms = 5000): Promise<Message[]> {
    const out: Message[] = [];
    const deadline = Date.now() + ms;
    while (out.length < n) out.push(await this.next("message", Math.max(1, deadline - Date.now())));
    return out;
  }

  /** Every event that arrives within `ms`. */
  async quiet(ms: number): Promise<ClientEvent[]> {
    const out: ClientEvent[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return out;
      const event = await this.poll(left);
      if (event === null) return out;
      out.push(event);
    }
  }
}

export const texts = (messages: Message[]): (string | undefined)[] => messages.map((m) => m.text);
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A WebSocket constructor that records every frame the client sends (decoded), for
 * tests that check what went on the wire.
 */
export function spyingWebSocket(sent: Record<string, unknown>[]): WebSocketConstructor {
  const Base = WebSocketImpl as unknown as new (url: string, protocols?: string | string[]) => { send(data: ArrayBuffer): void };
  class Spy extends Base {
    override send(data: ArrayBuffer): void {
      sent.push(decodeFrame(new Uint8Array(data)));
      super.send(data);
    }
  }
  return Spy as unknown as WebSocketConstructor;
}
