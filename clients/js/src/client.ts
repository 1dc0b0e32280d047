/**
 * The Clipwire client: one logical session over reconnecting WebSocket connections,
 * with the behaviour of the Python SDK (`clients/python/client.py`).
 *
 * `connect()` opens a connection (offering the `clipwire.v1` subprotocol), says
 * hello and keeps the welcome. Replies are matched to waiting requests by `id`,
 * hub events are filed for delivery (see `delivery.ts`). When the connection
 * drops, or the hub closes it with a code that allows it, the client reconnects
 * with jittered exponential backoff, says hello with `resume` set to the highest
 * contiguous seq it holds per conversation, and sends again every request that is
 * safe to repeat: a `send` or `share` goes out with the same `cmid`, and the hub
 * answers it with the first result, so the caller gets exactly one answer and one
 * stored message. Every request is validated as the hub would before it is sent.
 * Requests the hub rate-limits wait in a queue and go out in call order at the
 * announced rates (see `pacing.ts`).
 *
 * Only platform APIs are used (a `WebSocket` constructor, timers, `console`), so the
 * same build runs in browsers, React Native and Node >= 22 (Node 20: pass
 * `WebSocketImpl` from the `ws` package).
 */

import {
  DEFAULT_LIMITS, type Frame, FrameError, FrameTooLarge, type Limits, decodeFrame, encodeFrame, limitsFrom, utf8Decode, utf8Length,
} from "./codec.js";
import { type Logger, Delivery } from "./delivery.js";
import {
  BadRequest,
  ClientClosed,
  CloseCode,
  ConnectFailed,
  ConnectionLost,
  RequestError,
  RequestFailed,
  RateLimited,
  RequestTimeout,
  TooLarge,
  Unauthorized,
} from "./errors.js";
import { Friends } from "./friends.js";
import {
  type ClientEvent,
  type ClientEventType,
  type Conversation,
  type EventOf,
  type FriendRequest,
  type Message,
  type Presence,
  type Reply,
  type ShareResult,
  type VideoCard,
  type WatchState,
  cardFromWire,
  cardToWire,
  conversationFromWire,
  eventFromWire,
  isMap,
  messageFromWire,
  presenceFromWire,
  replyToWire,
  shareResultFromWire,
  withConversation,
} from "./models.js";
import { KIND_OF, Pacer, shareCost } from "./pacing.js";
import { type EventIterator, EventStream } from "./stream.js";
import { PROTOCOL_VERSION, REQUEST_TYPES, SUBPROTOCOL, validateHello, validateRequest } from "./validate.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
/** The part of the WHATWG `WebSocket` the client uses (browsers, React Native, `ws`). */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  send(data: ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
/* eslint-enable @typescript-eslint/no-explicit-any */

export type TokenProvider = () => string | Promise<string>;

export interface ConnectOptions {
  /** The JWT your backend signed. Give this, a `tokenProvider`, or both. */
  token?: string;
  /** Returns a fresh token: used when the hub refuses or expires the current one
   * (close 4001), on reconnects after that, and to refresh before expiry. */
  tokenProvider?: TokenProvider;
  /** A label for this device (an identifier). */
  device?: string;
  /** Reconnect after drops and on close codes 1001, 1005, 1006, 1011, 1012, 1013,
   * 4002, 4008 (after a pause), 4009, 4010, and 4001 with a tokenProvider. Default true. */
  reconnect?: boolean;
  /** `{conv: seq}` saved from `client.resumeState`: later messages arrive as events. */
  resume?: Readonly<Record<string, number>>;
  /** Default time for each request, waiting for a reconnect included, but not waiting
   * for its turn under the hub's rate limits: `send`, `share` (one per target),
   * `history` and `friend.request` wait in one queue and go out in call order at the
   * rates the welcome announced; a `rate_limited` answer is waited out
   * (`retry_after_ms`) and repeated. Default 10000. */
  requestTimeoutMs?: number;
  /** How many such requests may wait; one more is refused at once with RateLimited. Default 10000. */
  maxQueuedRequests?: number;
  /** Time to open the socket and get the welcome. Default 10000. */
  connectTimeoutMs?: number;
  /** Backoff: exponential from `backoffInitialMs` (250) up to `backoffMaxMs` (10000), jittered. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Reconnect attempts per outage before giving up; default unlimited. */
  maxReconnectAttempts?: number | null;
  /** Bound of the event queue. Default 1000. */
  maxQueuedEvents?: number;
  /** Messages held per conversation while waiting for a hole to fill. Default 1000. */
  maxBufferedMessages?: number;
  /** How long to wait for a missing message to arrive by itself before fetching it. Default 250. */
  holeGraceMs?: number;
  /** Past messages of a conversation that appeared while disconnected delivered as events. Default 100. */
  newConversationBackfill?: number;
  /** Send an application `ping` this often while idle to detect dead connections
   * (a browser cannot send WebSocket pings). Default 20000; null: off. */
  keepaliveIntervalMs?: number | null;
  /** Drop the connection (and reconnect) when a keepalive ping gets no answer in this time. Default 20000. */
  keepaliveTimeoutMs?: number;
  /** With a tokenProvider, refresh the session this long before the token's `exp`. Default 60000; null: off. */
  refreshBeforeExpiryMs?: number | null;
  /** The WebSocket constructor; default `globalThis.WebSocket`. */
  WebSocketImpl?: WebSocketConstructor;
  /** Where the client logs; default: warnings and errors to `console`. */
  logger?: Partial<Logger>;
}

/** Close codes after which the client reconnects (4001 too, with a tokenProvider). */
export const RECONNECT_CODES: ReadonlySet<number> = new Set([1001, 1005, 1006, 1011, 1012, 1013, 4002, 4008, 4009, 4010]);

/** Request types sent again after a reconnect if the first answer was lost: `send` and
 * `share` are deduplicated by `cmid`; the rest read, or set a state. */
export const REPEATABLE: ReadonlySet<string> = new Set([
  "send", "share", "history", "ping", "presence", "read", "react", "unsend", "group.add",
  "group.remove", "friend.request", "friend.accept", "friend.remove", "block", "unblock", "watch",
]);

const PAUSE_AFTER: Readonly<Record<number, number>> = { 4008: 5000 };
const AT_ONCE: ReadonlySet<number> = new Set([4010, 4001]);
const MAX_INCOMING = 16 * 1024 * 1024;
/** What the hub sends (history pages, long welcome lists) is bounded by this. */
const INCOMING: Limits = {
  ...DEFAULT_LIMITS, max_frame_bytes: MAX_INCOMING, max_depth: 32, max_str_len: MAX_INCOMING,
  max_array_len: 1 << 20, max_map_len: 1 << 20,
};
const OWN_CMIDS_KEPT = 4096;
const MAX_TIMER = 2 ** 31 - 1;

type Timer = ReturnType<typeof setTimeout>;
type Result = Record<string, unknown>;

interface Call {
  id: number;
  t: string;
  data: Uint8Array;
  repeatable: boolean;
  onOk: ((result: Result) => void) | null;
  sentOn: number | null; // connection number it was written to; null: not (yet) sent
  done: boolean;
  kind: string; // the rate-limit kind it spends ("": not paced)
  cost: number;
  keys: string[]; // conversations it writes to, for ordering
  /** Start (or go on with) its timeout: it runs only while out of the pacing queue. */
  arm(): void;
  disarm(): void;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

class Connection {
  dead = false;
  keepaliveTimer: Timer | null = null;
  keepaliveDeadline: Timer | null = null;
  keepaliveId: number | null = null;
  lastHeard = Date.now();
  constructor(readonly ws: WebSocketLike, readonly no: number) {}
}

/** Options shared by every request helper. */
export interface CallOptions {
  /** Overrides `requestTimeoutMs` for this request. */
  timeoutMs?: number;
}

export type Target = { to: string; conv?: undefined } | { conv: string; to?: undefined };

export interface SendOptions extends CallOptions {
  /** Reply to this message (a seq, or `{seq, atMs}`). */
  reply?: number | Reply;
  /** Your id for the message; default a fresh one. Reuse it only to retry the same message. */
  cmid?: string;
}

/** A fresh client message id (32 hex digits). */
export function newCmid(): string {
  const bytes = new Uint8Array(16);
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** The `exp` claim (seconds) of a JWT, read without checking it; null if unreadable. */
export function tokenExpiry(token: string): number | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const clean = part.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const bytes: number[] = [];
    let bits = 0;
    let acc = 0;
    for (const ch of clean) {
      const v = alphabet.indexOf(ch);
      if (v < 0) return null;
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push((acc >> bits) & 0xff);
      }
    }
    const claims: unknown = JSON.parse(utf8Decode(Uint8Array.from(bytes), 0, bytes.length));
    const exp = isMap(claims) ? claims["exp"] : undefined;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}

function defaultLogger(given?: Partial<Logger>): Logger {
  const noop = (): void => {};
  const con = typeof console !== "undefined" ? console : undefined;
  return {
    debug: given?.debug?.bind(given) ?? noop,
    info: given?.info?.bind(given) ?? noop,
    warn: given?.warn?.bind(given) ?? (con ? con.warn.bind(con) : noop),
    error: given?.error?.bind(given) ?? (con ? con.error.bind(con) : noop),
  };
}

function hasToken(options: ConnectOptions): boolean {
  return options.token !== undefined || options.tokenProvider !== undefined;
}

/**
 * A Clipwire session. Create it with {@link connect}.
 *
 * After the hello, `user`, `session`, `serverTime`, `limits`, `conversations`,
 * `friends`, `friendRequests` and the raw `welcome` are available; the client
 * keeps them current from events.
 *
 * Events come out in order through `for await (const ev of client)` (or
 * `client.events()`) and through `client.on(type, listener)`: `message` (each
 * `(conv, seq)` once, in seq order per conversation; not the messages this client
 * sent, which its send calls return; tombstones and hidden stubs included),
 * `conversation`, `presence`, `typing`, `read`, `reaction`, `unsent`, `watch`,
 * `friend`, `disconnected`, `reconnected`, and `unknown` for event types it does
 * not know. Iteration ends after `close()`, and throws {@link ClientClosed} when
 * the hub ended the session for good.
 */
export class Client {
  readonly url: string;
  readonly device: string | undefined;
  /** Default timeout of each request (ms). */
  requestTimeoutMs: number;

  /** Your user id (the token's `sub`). */
  user = "";
  /** The hub's id for the current connection. */
  session = "";
  /** The hub's clock at the last welcome (ms). */
  serverTime = 0;
  /** The limits the hub announced (defaults until the welcome). */
  limits: Limits = { ...DEFAULT_LIMITS };
  /** The last welcome, as sent (without `t` and `id`). */
  welcome: Record<string, unknown> = {};
  /** The subprotocol the hub selected (`clipwire.v1`). */
  subprotocol = "";

  private token: string | undefined;
  private readonly tokenProvider: TokenProvider | undefined;
  private readonly shouldReconnect: boolean;
  private readonly initialResume: Record<string, number>;
  private readonly connectTimeoutMs: number;
  private readonly backoff: [number, number];
  private readonly maxAttempts: number | null;
  private readonly backfill: number;
  private readonly keepalive: [number | null, number];
  private readonly refreshBefore: number | null;
  private readonly Impl: WebSocketConstructor | undefined;
  private readonly log: Logger;

  private convs = new Map<string, Conversation>();
  private readonly friendState = new Friends();
  private nextId = 1;
  private readonly calls = new Map<number, Call>();
  private readonly ownCmids = new Map<string, true>();
  private conn: Connection | null = null;
  private connNo = 0;
  private online = false;
  private onlineWaiters: (() => void)[] = [];
  private final: ClientClosed | null = null;
  private closedByUser = false;
  private opened = false;
  private clockOffset = 0;
  private refreshTimer: Timer | null = null;
  private sleeping: { timer: Timer; wake: () => void } | null = null;
  private readonly stream: EventStream;
  private readonly delivery: Delivery;
  private readonly pacer: Pacer<Call>;

  constructor(url: string, options: ConnectOptions) {
    if (!hasToken(options)) throw new TypeError("give a token, a tokenProvider, or both");
    this.url = url;
    this.device = options.device;
    this.token = options.token;
    this.tokenProvider = options.tokenProvider;
    this.shouldReconnect = options.reconnect ?? true;
    this.initialResume = { ...(options.resume ?? {}) };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.backoff = [options.backoffInitialMs ?? 250, options.backoffMaxMs ?? 10_000];
    this.maxAttempts = options.maxReconnectAttempts ?? null;
    this.backfill = options.newConversationBackfill ?? 100;
    this.keepalive = [
      options.keepaliveIntervalMs === undefined ? 20_000 : options.keepaliveIntervalMs,
      options.keepaliveTimeoutMs ?? 20_000,
    ];
    this.refreshBefore = options.refreshBeforeExpiryMs === undefined ? 60_000 : options.refreshBeforeExpiryMs;
    this.Impl = options.WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.log = defaultLogger(options.logger);
    this.stream = new EventStream(options.maxQueuedEvents ?? 1000, (error) => this.log.error("an event listener failed", error));
    this.delivery = new Delivery(
      this.stream, (conv, first, last) => this.fetch(conv, first, last), (msg) => this.isOwn(msg),
      options.maxBufferedMessages ?? 1000, options.holeGraceMs ?? 250, this.log,
    );
    this.pacer = new Pacer<Call>((call) => {
      call.arm();
      if (this.conn !== null) this.writeCall(this.conn, call);
    }, options.maxQueuedRequests ?? 10_000);
  }

  // -- lifecycle -----------------------------------------------------------

  /** Connect and say hello; rejects with Unauthorized, ConnectFailed, ... */
  async open(): Promise<this> {
    if (this.final !== null) throw new ClientClosed(this.final.code, this.final.reason);
    if (this.opened) return this;
    this.opened = true;
    if (this.device !== undefined) {
      try {
        validateHello({ t: "hello", id: 1, v: 1, token: "x", device: this.device });
      } catch (error) {
        if (error instanceof RequestError) throw RequestFailed.local(error, "hello");
        throw error;
      }
    }
    try {
      if (this.token === undefined) this.token = await this.tokenProvider!();
      try {
        await this.connectOnce(true, 0);
      } catch (error) {
        if (!(error instanceof Unauthorized) || this.tokenProvider === undefined) throw error;
        this.token = await this.tokenProvider();
        await this.connectOnce(true, 0);
      }
    } catch (error) {
      this.opened = false;
      throw error;
    }
    return this;
  }

  /** Close the connection, fail what is still waiting, end iteration. Idempotent. */
  async close(): Promise<void> {
    if (this.closedByUser) return;
    this.closedByUser = true;
    this.final ??= new ClientClosed(CloseCode.NORMAL, "closed by the client");
    this.stopTimers();
    this.wakeSleeper();
    const conn = this.conn;
    this.conn = null;
    this.online = false;
    this.wakeOnlineWaiters();
    this.failAll(this.final);
    this.pacer.close();
    this.delivery.stop();
    this.stream.clear();
    this.stream.end(null);
    if (conn !== null) await this.closeSocket(conn, CloseCode.NORMAL, "bye");
  }

  /** True while a connection is up and past its hello. */
  get connected(): boolean {
    return this.online;
  }

  /** True once the client is closed (by you, or for good by the hub). */
  get closed(): boolean {
    return this.final !== null;
  }

  /** Wait until the client is connected (again); rejects with ClientClosed if it never will. */
  waitConnected(timeoutMs?: number): Promise<void> {
    if (this.online) return Promise.resolve();
    if (this.final !== null) return Promise.reject(new ClientClosed(this.final.code, this.final.reason));
    return new Promise((resolve, reject) => {
      let timer: Timer | null = null;
      const waiter = (): void => {
        if (timer !== null) clearTimeout(timer);
        if (this.online) resolve();
        else reject(this.final ? new ClientClosed(this.final.code, this.final.reason) : new RequestTimeout("connect", timeoutMs ?? 0));
      };
      this.onlineWaiters.push(waiter);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.onlineWaiters = this.onlineWaiters.filter((w) => w !== waiter);
          reject(new RequestTimeout("connect", timeoutMs));
        }, Math.min(timeoutMs, MAX_TIMER));
      }
    });
  }

  /** Your conversations (conv id to summary, with read marker and watch state), kept current. */
  get conversations(): ReadonlyMap<string, Conversation> {
    return this.convs;
  }

  /** Your friends and whether they are online, kept current from events. */
  get friends(): ReadonlyMap<string, Presence> {
    return this.friendState.friends;
  }

  /** Pending friend requests: `"in"` from them, `"out"` from you. */
  get friendRequests(): readonly FriendRequest[] {
    return this.friendState.requests;
  }

  /** Per conversation, the highest seq up to which every message was received.
   * Persist it (it stays readable after `close()`) and pass it as
   * `connect(url, {resume})` to pick up where you left off. */
  get resumeState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [conv, seq] of this.delivery.resumePoints()) setKey(out, conv, seq);
    return out;
  }

  /** Non-message events dropped because the event queue was full. */
  get droppedEvents(): number {
    return this.stream.dropped;
  }

  /** Messages that arrived again and were not delivered a second time. */
  get duplicatesDropped(): number {
    return this.delivery.duplicates;
  }

  // -- events --------------------------------------------------------------

  /** An async iterator over the events (each iterator sees every event from now on). */
  events(): EventIterator {
    return this.stream.iterator();
  }

  [Symbol.asyncIterator](): EventIterator {
    return this.stream.iterator();
  }

  /**
   * Call `listener` for each event of `type` (or every event, with `"*"`), in order.
   * A listener that returns a promise holds the next events back until it settles.
   * Returns a function that removes the listener.
   */
  on<K extends ClientEventType>(type: K, listener: (event: EventOf<K>) => void | Promise<void>): () => void;
  on(type: "*", listener: (event: ClientEvent) => void | Promise<void>): () => void;
  on(type: string, listener: (event: never) => void | Promise<void>): () => void {
    const call = listener as (event: ClientEvent) => void | Promise<void>;
    return this.stream.subscribe(type === "*" ? call : (event) => (event.type === type ? call(event) : undefined));
  }

  // -- requests ------------------------------------------------------------

  /**
   * Send request `t` with `fields` (wire names; undefined and null are left out) and
   * return the `ok` result without `t`/`id`. Known request types are validated first.
   */
  async request(t: string, fields: Readonly<Record<string, unknown>> = {}, options: CallOptions = {}): Promise<Result> {
    if (t === "typing") { // a signal: never answered
      this.typing(fields["conv"] as string);
      return {};
    }
    return this.call(t, fields, options.timeoutMs, null);
  }

  /** Send a text message to user `to` (a DM) or to conversation `conv`; returns it as stored. */
  async sendText(text: string, target: Target & SendOptions): Promise<Message> {
    return this.sendMessage("text", text, undefined, target);
  }

  /** Send one video card, with an optional note, to `to` or `conv`. */
  async sendVideo(video: VideoCard, target: Target & SendOptions & { text?: string }): Promise<Message> {
    return this.sendMessage("video", target.text, video, target);
  }

  /** Reply to message `seq` of `conv`; `atMs`: to that moment of its video. */
  async replyTo(conv: string, seq: number, text: string, options: CallOptions & { atMs?: number; cmid?: string } = {}): Promise<Message> {
    const reply: Reply = options.atMs === undefined ? { seq } : { seq, atMs: options.atMs };
    return this.sendMessage("text", text, undefined, { conv, reply, cmid: options.cmid, timeoutMs: options.timeoutMs });
  }

  /** Share a video card with users `to` (DMs) and conversations `convs` at once; one result per target. */
  async shareVideo(
    video: VideoCard,
    targets: CallOptions & { to?: string | readonly string[]; convs?: string | readonly string[]; text?: string; cmid?: string },
  ): Promise<ShareResult[]> {
    const to = typeof targets.to === "string" ? [targets.to] : [...(targets.to ?? [])];
    const convs = typeof targets.convs === "string" ? [targets.convs] : [...(targets.convs ?? [])];
    const cmid = targets.cmid ?? newCmid();
    this.rememberCmid(cmid);
    const result = await this.call("share", {
      video: cardToWire(video), to: to.length ? to : undefined, convs: convs.length ? convs : undefined,
      text: targets.text, cmid,
    }, targets.timeoutMs, (res) => {
      for (const item of arrayOf(res["results"])) {
        if (isMap(item) && typeof item["seq"] === "number" && typeof item["conv"] === "string") this.ownStored(item["conv"], item["seq"]);
      }
    });
    return arrayOf(result["results"]).filter(isMap).map(shareResultFromWire);
  }

  /** Up to `limit` (1..100, default 50) messages of `conv` before seq `before` (the newest
   * page without it), oldest first. A page of long messages may be cut short. */
  async history(conv: string, options: CallOptions & { before?: number; limit?: number } = {}): Promise<Message[]> {
    const result = await this.call("history", { conv, before: options.before, limit: options.limit ?? 50 }, options.timeoutMs, null);
    return arrayOf(result["messages"]).filter(isMap).map(messageFromWire);
  }

  /** Create a group with you as owner; returns its conversation id (already in `conversations`). */
  async createGroup(members: readonly string[], title = "", options: CallOptions = {}): Promise<string> {
    const others = [...new Set(members)].filter((m) => m !== this.user);
    const result = await this.call("group.create", { members: others, title }, options.timeoutMs, (res) => {
      const convId = String(res["conv"]);
      if (!this.convs.has(convId)) {
        this.convs.set(convId, conversationFromWire({
          conv: convId, kind: "group", title, members: [this.user, ...others], owner: this.user, last_seq: 0,
        }));
      }
      if (!this.delivery.knows(convId)) this.delivery.track(convId, 0, 0, false);
    });
    return String(result["conv"]);
  }

  async addMembers(conv: string, members: readonly string[], options: CallOptions = {}): Promise<void> {
    await this.call("group.add", { conv, members: [...members] }, options.timeoutMs, null);
  }

  /** Remove members from a group (owner only). */
  async removeMembers(conv: string, members: readonly string[], options: CallOptions = {}): Promise<void> {
    await this.call("group.remove", { conv, members: [...members] }, options.timeoutMs, null);
  }

  async leaveGroup(conv: string, options: CallOptions = {}): Promise<void> {
    await this.call("group.leave", { conv }, options.timeoutMs, null);
  }

  /** Round trip to the hub; returns its clock (ms). */
  async ping(options: CallOptions = {}): Promise<number> {
    const result = await this.call("ping", {}, options.timeoutMs, null);
    return typeof result["server_time"] === "number" ? result["server_time"] : 0;
  }

  /** Signal that the user is typing in `conv` (no answer; dropped while disconnected). */
  typing(conv: string): void {
    this.checkOutgoing({ t: "typing", conv }, "typing");
    const conn = this.conn;
    if (conn !== null && this.online) this.write(conn, encodeFrame({ t: "typing", conv }, this.limits));
  }

  /** Mark `conv` read up to `seq`; returns the stored marker (it never moves back). */
  async read(conv: string, seq: number, options: CallOptions = {}): Promise<number> {
    const result = await this.call("read", { conv, seq }, options.timeoutMs, (res) => {
      if (typeof res["read_seq"] === "number") this.setRead(conv, res["read_seq"]);
    });
    return typeof result["read_seq"] === "number" ? result["read_seq"] : seq;
  }

  /** React to message `seq` with `emoji` (`on: false` takes it back); `atMs` pins it to a
   * moment of a video share. One reaction per emoji and user. */
  async react(conv: string, seq: number, emoji: string, options: CallOptions & { on?: boolean; atMs?: number } = {}): Promise<void> {
    const on = options.on ?? true;
    await this.call("react", { conv, seq, emoji, on, at_ms: on ? options.atMs : undefined }, options.timeoutMs, null);
  }

  /** Take back your own message `seq`: the hub keeps a tombstone; others get an `unsent` event. */
  async unsend(conv: string, seq: number, options: CallOptions = {}): Promise<void> {
    await this.call("unsend", { conv, seq }, options.timeoutMs, null);
  }

  /** Ask `user` to be friends (accepts instead, if they asked you first). */
  async friendRequest(user: string, options: CallOptions = {}): Promise<void> {
    await this.call("friend.request", { user }, options.timeoutMs, null);
  }

  /** Accept `user`'s pending request (NotFound if there is none). */
  async acceptFriend(user: string, options: CallOptions = {}): Promise<void> {
    await this.call("friend.accept", { user }, options.timeoutMs, null);
  }

  /** End a friendship, or withdraw or decline a pending request, with `user`. */
  async removeFriend(user: string, options: CallOptions = {}): Promise<void> {
    await this.call("friend.remove", { user }, options.timeoutMs, null);
  }

  /** Block `user`: no DMs, presence or typing either way; their group messages reach you as hidden stubs. */
  async block(user: string, options: CallOptions = {}): Promise<void> {
    await this.call("block", { user }, options.timeoutMs, null);
  }

  /** Lift your block on `user` (a friendship it ended stays ended). */
  async unblock(user: string, options: CallOptions = {}): Promise<void> {
    await this.call("unblock", { user }, options.timeoutMs, null);
  }

  /** The presence of `users`, who this connection then watches (`presence` events). Ask again after a reconnect. */
  async presence(users: readonly string[], options: CallOptions = {}): Promise<Presence[]> {
    const result = await this.call("presence", { users: [...users] }, options.timeoutMs, null);
    const states = arrayOf(result["users"]).filter(isMap).map(presenceFromWire);
    this.friendState.seen(states);
    return states;
  }

  /** Set `conv`'s watch-together state (last writer wins); returns it as stored. */
  async watch(conv: string, videoId: string, posMs: number, playing: boolean, options: CallOptions = {}): Promise<WatchState> {
    const result = await this.call("watch", { conv, video_id: videoId, pos_ms: posMs, playing }, options.timeoutMs, null);
    const state: WatchState = {
      type: "watch", conv, by: this.user, videoId, posMs, playing, ts: typeof result["ts"] === "number" ? result["ts"] : 0,
    };
    this.setWatch(state);
    return state;
  }

  /** Swap in a new token (default: one from the tokenProvider) before the current one
   * expires; returns the session's new closing time (ms). Later reconnects use it too. */
  async refresh(token?: string, options: CallOptions = {}): Promise<number> {
    let fresh = token;
    if (fresh === undefined) {
      if (this.tokenProvider === undefined) throw new TypeError("refresh() needs a token or a tokenProvider");
      fresh = await this.tokenProvider();
    }
    const result = await this.call("refresh", { token: fresh }, options.timeoutMs, null);
    this.token = fresh;
    this.scheduleRefresh();
    return typeof result["expires_at"] === "number" ? result["expires_at"] : 0;
  }

  // -- request machinery ---------------------------------------------------

  private async sendMessage(kind: "text" | "video", text: string | undefined, video: VideoCard | undefined,
                            target: Partial<Target> & SendOptions): Promise<Message> {
    const reply: Reply | undefined = typeof target.reply === "number" ? { seq: target.reply } : target.reply;
    const cmid = target.cmid ?? newCmid();
    this.rememberCmid(cmid);
    const result = await this.call("send", {
      to: target.to, conv: target.conv, kind, text,
      video: video === undefined ? undefined : cardToWire(video),
      reply: reply === undefined ? undefined : replyToWire(reply), cmid,
    }, target.timeoutMs, (res) => this.ownStored(String(res["conv"]), Number(res["seq"])));
    const msg: Message = {
      type: "message", conv: String(result["conv"]), seq: Number(result["seq"]), sender: this.user,
      ts: typeof result["ts"] === "number" ? result["ts"] : 0, kind, cmid, unsent: false, hidden: false, reactions: [],
    };
    if (text !== undefined && text !== "") msg.text = text;
    const card = video === undefined ? undefined : cardFromWire(cardToWire(video));
    if (card !== undefined) msg.video = card;
    if (reply !== undefined) msg.reply = reply;
    return msg;
  }

  /** Validate and encode `frame` as the hub would read it; throw the RequestFailed it would answer. */
  private checkOutgoing(frame: Frame, t: string): Uint8Array {
    try {
      if (REQUEST_TYPES.includes(t)) validateRequest(frame, this.limits);
      return encodeFrame(frame, this.limits);
    } catch (error) {
      if (error instanceof RequestError) throw RequestFailed.local(error, t);
      if (error instanceof FrameTooLarge) {
        const failed = new TooLarge("too_large", `${error.reason}; the hub takes at most ${this.limits.max_frame_bytes}`, t);
        failed.local = true;
        throw failed;
      }
      if (error instanceof FrameError) {
        const failed = new BadRequest("bad_request", error.reason, t);
        failed.local = true;
        throw failed;
      }
      throw error;
    }
  }

  private call(t: string, fields: Readonly<Record<string, unknown>>, timeoutMs: number | undefined,
               onOk: ((result: Result) => void) | null): Promise<Result> {
    if (this.final !== null) return Promise.reject(new ClientClosed(this.final.code, this.final.reason));
    if (t === "hello") return Promise.reject(new TypeError("the client says hello itself"));
    const id = this.nextId++;
    const frame: Frame = { t, id };
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (value !== undefined && value !== null && key !== "t" && key !== "id") setKey(frame, key, value);
    }
    let data: Uint8Array;
    let paced: Pick<Call, "kind" | "cost" | "keys">;
    try {
      data = this.checkOutgoing(frame, t);
      paced = this.pace(t, frame);
    } catch (error) {
      return Promise.reject(error);
    }
    const ms = timeoutMs ?? this.requestTimeoutMs;
    return new Promise<Result>((resolve, reject) => {
      let timer: Timer | null = null;
      let leftMs = ms;
      let armedAt: number | null = null;
      const finish = (): void => {
        call.done = true;
        if (timer !== null) clearTimeout(timer);
        this.calls.delete(id);
        if (call.kind) this.pacer.answered(call);
      };
      const call: Call = {
        id, t, data, repeatable: REPEATABLE.has(t), onOk, sentOn: null, done: false, ...paced,
        arm: () => {
          if (call.done || armedAt !== null) return;
          armedAt = Date.now();
          timer = setTimeout(() => {
            if (call.done) return;
            finish();
            reject(new RequestTimeout(t, ms));
          }, Math.min(Math.max(0, leftMs), MAX_TIMER));
        },
        disarm: () => {
          if (armedAt === null) return;
          leftMs -= Date.now() - armedAt;
          armedAt = null;
          if (timer !== null) clearTimeout(timer);
          timer = null;
        },
        resolve: (result) => { finish(); resolve(result); },
        reject: (error) => { finish(); reject(error); },
      };
      this.calls.set(id, call);
      if (call.kind) {
        this.pacer.enqueue(call);
      } else {
        call.arm();
        if (this.online && this.conn !== null) this.writeCall(this.conn, call);
      }
    });
  }

  /** The rate-limit kind, cost and ordering keys of a request; refuse it at once if the queue is full. */
  private pace(t: string, frame: Frame): Pick<Call, "kind" | "cost" | "keys"> {
    const kind = KIND_OF[t];
    if (kind === undefined) return { kind: "", cost: 0, keys: [] };
    const keys: string[] = [];
    if (t === "send" || t === "share") {
      for (const user of listed(frame["to"])) keys.push(this.dmKey(user));
      keys.push(...listed(frame["conv"]), ...listed(frame["convs"]));
    }
    const cost = t === "share" ? shareCost(listed(frame["to"]), listed(frame["convs"])) : 1;
    if (this.pacer.full) {
      const failed = new RateLimited("rate_limited", `${this.pacer.maxQueued} requests already wait for the hub's rate limits (maxQueuedRequests)`, t);
      failed.local = true;
      throw failed;
    }
    return { kind, cost, keys };
  }

  /** The ordering key of a DM by user: its conversation id once known. */
  private dmKey(user: string): string {
    for (const conv of this.convs.values()) if (conv.peer === user) return conv.conv;
    return `@${user}`;
  }

  private writeCall(conn: Connection, call: Call): void {
    if (call.done || conn.dead) return;
    call.sentOn = conn.no;
    this.write(conn, call.data);
  }

  private write(conn: Connection, data: Uint8Array): void {
    try {
      // An exact copy: some WebSocket implementations send a view's whole buffer.
      conn.ws.send(data.slice().buffer);
    } catch (error) {
      this.log.debug("write failed; the close handler repeats or fails the call", error);
    }
  }

  private rememberCmid(cmid: string): void {
    this.ownCmids.delete(cmid);
    this.ownCmids.set(cmid, true);
    while (this.ownCmids.size > OWN_CMIDS_KEPT) this.ownCmids.delete(this.ownCmids.keys().next().value!);
  }

  /** A message this client sent itself (its caller got it as the send's result). */
  private isOwn(msg: Message): boolean {
    return msg.sender === this.user && this.ownCmids.has(msg.cmid);
  }

  private ownStored(conv: string, seq: number): void {
    this.seenSeq(conv, seq);
    this.delivery.onOwn(conv, seq);
  }

  private failAll(error: ClientClosed): void {
    for (const call of [...this.calls.values()]) call.reject(new ClientClosed(error.code, error.reason));
    this.calls.clear();
  }

  /** Messages `first..last` of `conv` (at most one page), for hole filling. The hub may
   * cut a page of long messages short, keeping the newest: ask again below what came. */
  private async fetch(conv: string, first: number, last: number): Promise<Message[]> {
    await this.waitConnected();
    const got: Message[] = [];
    let before = last + 1;
    while (before > first) {
      const page = await this.history(conv, { before, limit: before - first });
      if (page.length === 0) break;
      got.unshift(...page);
      before = page[0]!.seq;
    }
    return got;
  }

  // -- connections ---------------------------------------------------------

  /** Open a WebSocket, say hello, apply the welcome and go online. */
  private async connectOnce(initial: boolean, attempts: number): Promise<void> {
    const Impl = this.Impl;
    if (Impl === undefined) {
      throw new ConnectFailed("no WebSocket implementation: pass connect(url, {WebSocketImpl}) (on Node 20, the ws package)");
    }
    let ws: WebSocketLike;
    try {
      ws = new Impl(this.url, [SUBPROTOCOL]);
      ws.binaryType = "arraybuffer";
    } catch (error) {
      throw new ConnectFailed(`cannot connect to ${this.url}: ${String(error)}`);
    }
    const conn = new Connection(ws, ++this.connNo);
    const resume = this.resumeForHello(initial);
    const helloId = this.nextId++;
    const hello: Frame = { t: "hello", id: helloId, v: PROTOCOL_VERSION, token: this.token ?? "" };
    if (this.device !== undefined) hello["device"] = this.device;
    if (Object.keys(resume).length > 0) hello["resume"] = resume;
    let helloBytes: Uint8Array;
    try {
      validateHello(hello);
      helloBytes = encodeFrame(hello);
    } catch (error) {
      this.detach(ws);
      try { ws.close(); } catch { /* not open yet */ }
      if (error instanceof RequestError) throw RequestFailed.local(error, "hello");
      if (error instanceof FrameError) throw new ConnectFailed(`cannot say hello: ${error.reason}`);
      throw error;
    }

    await new Promise<void>((resolve, reject) => {
      let opened = false;
      let settled = false;
      const fail = (error: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.dead = true;
        this.detach(ws);
        try { ws.close(); } catch { /* already closed */ }
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(new ConnectFailed(opened ? `no welcome from ${this.url} in ${this.connectTimeoutMs} ms`
          : `cannot connect to ${this.url}: no answer in ${this.connectTimeoutMs} ms`));
      }, Math.min(this.connectTimeoutMs, MAX_TIMER));
      ws.onopen = () => {
        opened = true;
        this.write(conn, helloBytes);
      };
      ws.onerror = () => { /* the close event follows */ };
      ws.onclose = (event: { code?: number; reason?: string }) => {
        const code = event?.code ?? 1006;
        fail(new ConnectFailed(opened
          ? `${this.url} closed the connection during hello (${code}${event?.reason ? ` ${event.reason}` : ""})`
          : `cannot connect to ${this.url} (${code})`));
      };
      ws.onmessage = (event: { data: unknown }) => {
        if (settled) return;
        const frame = this.readFrame(event.data);
        if (frame === null || (frame.t !== "ok" && frame.t !== "error") || frame["id"] !== helloId) return;
        if (frame.t === "error") {
          fail(RequestFailed.fromWire(frame["code"], frame["message"], "hello"));
          return;
        }
        settled = true;
        clearTimeout(timer);
        // Everything from here on is synchronous, so that no frame after the welcome
        // (the resume backlog) is handled before the client is online.
        this.subprotocol = ws.protocol ?? "";
        this.applyWelcome(frame, resume, initial);
        ws.onmessage = (ev: { data: unknown }) => this.onData(conn, ev.data);
        ws.onclose = (ev: { code?: number; reason?: string }) => this.onClosed(conn, ev?.code ?? 1006, ev?.reason ?? "");
        this.goOnline(conn);
        if (!initial) {
          this.stream.emit({ type: "reconnected", session: this.session, attempts });
          for (const change of this.afterWelcome) this.stream.emit(change);
        }
        this.afterWelcome = [];
        resolve();
      };
    });
  }

  private afterWelcome: ClientEvent[] = [];

  private detach(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = null;
  }

  private closeSocket(conn: Connection, code: number, reason: string): Promise<void> {
    conn.dead = true;
    this.stopKeepalive(conn);
    return new Promise((resolve) => {
      const timer = setTimeout(done, 1000);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      conn.ws.onmessage = conn.ws.onerror = null;
      conn.ws.onclose = done;
      try {
        conn.ws.close(code, reason);
      } catch {
        done();
      }
    });
  }

  /** Decode one incoming message; null (and a warning) if it is not a frame. */
  private readFrame(data: unknown): Frame | null {
    if (typeof data === "string") {
      this.log.warn("ignored a text frame from the hub");
      return null;
    }
    try {
      return decodeFrame(data as ArrayBuffer, INCOMING);
    } catch (error) {
      this.log.warn(`ignored an unreadable frame from the hub: ${String(error)}`);
      return null;
    }
  }

  private onData(conn: Connection, data: unknown): void {
    if (conn.dead) return;
    conn.lastHeard = Date.now();
    const frame = this.readFrame(data);
    if (frame === null) return;
    try {
      this.dispatch(conn, frame);
    } catch (error) {
      this.log.error(`failed to handle a '${frame.t}' frame`, error);
    }
  }

  private goOnline(conn: Connection): void {
    this.conn = conn;
    const waiting = [...this.calls.values()].filter((c) => c.sentOn === null && !c.kind && !c.done).sort((a, b) => a.id - b.id);
    for (const call of waiting) this.writeCall(conn, call);
    this.online = true;
    this.pacer.online(isMap(this.welcome["limits"]) ? this.welcome["limits"] : {}); // paced requests go out from full buckets
    this.wakeOnlineWaiters();
    this.startKeepalive(conn);
    this.scheduleRefresh();
  }

  private goOffline(code: number, reason: string): void {
    this.online = false;
    this.conn = null;
    const overflow = code === CloseCode.SLOW_CONSUMER;
    if (overflow) {
      // An answer bigger than the hub's send buffer closes with 4009: fill holes with
      // smaller pages from now on, and do not repeat a history request that would do it again.
      this.delivery.page = Math.max(5, Math.floor(this.delivery.page / 2));
    }
    this.pacer.offline(); // paced requests on the wire go back to the queue
    for (const call of [...this.calls.values()]) {
      if (call.sentOn === null || call.done) continue;
      if (call.repeatable && !(overflow && call.t === "history")) call.sentOn = null;
      else call.reject(new ConnectionLost(call.t, code, reason));
    }
  }

  private wakeOnlineWaiters(): void {
    const waiters = this.onlineWaiters;
    this.onlineWaiters = [];
    for (const w of waiters) w();
  }

  private onClosed(conn: Connection, code: number, reason: string): void {
    if (conn.dead || conn !== this.conn) return;
    conn.dead = true;
    this.detach(conn.ws);
    this.stopKeepalive(conn);
    void this.afterClose(code, reason).catch((error: unknown) => {
      this.log.error("client connection loop failed", error);
      this.finish(CloseCode.INTERNAL, `client error: ${String(error)}`);
    });
  }

  private async afterClose(code: number, reason: string): Promise<void> {
    this.goOffline(code, reason);
    if (this.closedByUser) return;
    const willRetry = this.shouldReconnect
      && (RECONNECT_CODES.has(code) || (code === CloseCode.UNAUTHORIZED && this.tokenProvider !== undefined));
    this.log.info(`connection closed (${code} ${reason})${willRetry ? "; reconnecting" : ""}`);
    if (!willRetry) {
      this.finish(code, reason);
      return;
    }
    this.stream.emit({ type: "disconnected", code, reason, reconnecting: true });
    await this.reconnectAfter(code, reason);
  }

  private delay(attempt: number, code: number): number {
    const [initial, ceiling] = this.backoff;
    let delay: number;
    if (attempt === 1 && AT_ONCE.has(code)) {
      delay = Math.random() * initial;
    } else {
      const step = Math.min(ceiling, initial * 2 ** (attempt - 1));
      delay = step / 2 + Math.random() * (step / 2); // "equal jitter"
    }
    return Math.max(delay, PAUSE_AFTER[code] ?? 0);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleeping = null;
        resolve();
      };
      const timer = setTimeout(wake, Math.min(ms, MAX_TIMER));
      this.sleeping = { timer, wake };
    });
  }

  private wakeSleeper(): void {
    this.sleeping?.wake();
  }

  private async reconnectAfter(code: number, reason: string): Promise<void> {
    let needToken = code === CloseCode.UNAUTHORIZED;
    let fresh = false; // whether the token in use came from the provider for this outage
    let atOnce = false;
    let attempt = 0;
    for (;;) {
      attempt++;
      if (this.maxAttempts !== null && attempt > this.maxAttempts) {
        this.finish(code, `gave up reconnecting after ${this.maxAttempts} attempts (${reason})`);
        return;
      }
      if (!atOnce) await this.pause(this.delay(attempt, code));
      atOnce = false;
      if (this.closedByUser) return;
      try {
        if (needToken) {
          this.token = await this.tokenProvider!();
          needToken = false;
          fresh = true;
        }
        if (this.closedByUser) return;
        await this.connectOnce(false, attempt);
        if (this.closedByUser) {
          const conn = this.conn;
          this.conn = null;
          this.online = false;
          if (conn !== null) void this.closeSocket(conn, CloseCode.NORMAL, "bye");
        }
        return;
      } catch (error) {
        if (this.closedByUser) return;
        if (error instanceof Unauthorized) {
          if (this.tokenProvider === undefined) {
            this.finish(CloseCode.UNAUTHORIZED, error.reason);
            return;
          }
          // A stale token is retried at once with a new one; a fresh one that is
          // refused too waits like any other failure.
          needToken = true;
          atOnce = !fresh;
          this.log.info(`hello refused (${error.reason}); getting a new token`);
        } else if (error instanceof RequestFailed) { // hello refused for another reason: a client bug
          this.finish(CloseCode.PROTOCOL_ERROR, error.message);
          return;
        } else {
          this.log.info(`reconnect attempt ${attempt} failed: ${String(error)}`);
        }
      }
    }
  }

  /** Closed for good (not by the user): fail waiting requests, end iteration. */
  private finish(code: number, reason: string): void {
    this.online = false;
    this.conn = null;
    this.final ??= new ClientClosed(code, reason);
    this.stopTimers();
    this.failAll(this.final);
    this.wakeOnlineWaiters();
    this.stream.emit({ type: "disconnected", code, reason, reconnecting: false });
    this.stream.end(this.final);
    this.delivery.stop();
  }

  private stopTimers(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.conn !== null) this.stopKeepalive(this.conn);
  }

  // -- keepalive and token refresh -----------------------------------------

  private startKeepalive(conn: Connection): void {
    const [interval] = this.keepalive;
    if (interval === null || interval <= 0) return;
    conn.lastHeard = Date.now();
    const tick = (): void => {
      if (conn.dead) return;
      const idle = Date.now() - conn.lastHeard;
      if (idle < interval || conn.keepaliveId !== null) {
        conn.keepaliveTimer = setTimeout(tick, Math.max(50, interval - idle));
        return;
      }
      const id = this.nextId++;
      conn.keepaliveId = id;
      this.write(conn, encodeFrame({ t: "ping", id }));
      conn.keepaliveDeadline = setTimeout(() => {
        if (conn.dead || conn.keepaliveId !== id) return;
        this.log.info("keepalive: no answer from the hub; reconnecting");
        this.abandon(conn, 1006, "keepalive timed out");
      }, this.keepalive[1]);
      conn.keepaliveTimer = setTimeout(tick, interval);
    };
    conn.keepaliveTimer = setTimeout(tick, interval);
  }

  private stopKeepalive(conn: Connection): void {
    if (conn.keepaliveTimer !== null) clearTimeout(conn.keepaliveTimer);
    if (conn.keepaliveDeadline !== null) clearTimeout(conn.keepaliveDeadline);
    conn.keepaliveTimer = conn.keepaliveDeadline = null;
  }

  /** Give up on a connection that went silent: close it and carry on as after a drop. */
  private abandon(conn: Connection, code: number, reason: string): void {
    if (conn.dead || conn !== this.conn) return;
    this.onClosed(conn, code, reason);
    try { conn.ws.close(CloseCode.NORMAL, reason); } catch { /* already closed */ }
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.tokenProvider === undefined || this.refreshBefore === null || this.final !== null || this.token === undefined) return;
    const exp = tokenExpiry(this.token);
    if (exp === null) return;
    const serverNow = Date.now() + this.clockOffset;
    const delay = Math.max(1000, exp * 1000 - serverNow - this.refreshBefore);
    // Timers hold at most 2^31 - 1 ms (about 24.8 days): look again then.
    this.refreshTimer = delay > MAX_TIMER
      ? setTimeout(() => this.scheduleRefresh(), MAX_TIMER)
      : setTimeout(() => void this.autoRefresh(), delay);
  }

  private async autoRefresh(): Promise<void> {
    this.refreshTimer = null;
    if (this.final !== null || !this.online || this.tokenProvider === undefined) return;
    const oldExp = tokenExpiry(this.token ?? "") ?? 0;
    try {
      const token = await this.tokenProvider();
      const exp = tokenExpiry(token);
      if (exp === null || exp <= oldExp) {
        this.log.warn("tokenProvider returned no newer token; the session will end at the token's expiry and reconnect");
        return;
      }
      await this.refresh(token);
    } catch (error) {
      this.log.warn(`refreshing the token failed: ${String(error)}`);
      if (this.final === null && this.refreshTimer === null) {
        this.refreshTimer = setTimeout(() => void this.autoRefresh(), 10_000);
      }
    }
  }

  // -- hello and welcome ---------------------------------------------------

  /** The `resume` map: conversations known to be behind first, within the hub's bounds. */
  private resumeForHello(initial: boolean): Record<string, number> {
    const points: [string, number, boolean][] = initial
      ? Object.keys(this.initialResume).map((c) => [c, this.initialResume[c]!, true])
      : this.delivery.resumePoints();
    const sorted = [...points.filter((p) => p[2]), ...points.filter((p) => !p[2])];
    const maxEntries = Math.max(1, this.limits.max_map_len - 8);
    let budget = Math.floor(this.limits.max_frame_bytes / 2);
    const out: Record<string, number> = {};
    let count = 0;
    for (const [conv, seq] of sorted) {
      try {
        validateHello({ t: "hello", id: 1, v: 1, token: "x", resume: { [conv]: seq } });
      } catch {
        this.log.warn(`resume: skipped an invalid entry ${JSON.stringify(conv)}`);
        continue;
      }
      budget -= utf8Length(conv) + 12;
      if (count >= maxEntries || budget < 0) break;
      setKey(out, conv, seq);
      count++;
    }
    return out;
  }

  private applyWelcome(frame: Frame, resumed: Record<string, number>, initial: boolean): void {
    this.afterWelcome = [];
    const welcome: Record<string, unknown> = {};
    for (const key of Object.keys(frame)) if (key !== "t" && key !== "id") setKey(welcome, key, frame[key]);
    this.welcome = welcome;
    this.user = String(frame["user"] ?? "");
    this.session = String(frame["session"] ?? "");
    this.serverTime = typeof frame["server_time"] === "number" ? frame["server_time"] : 0;
    if (this.serverTime) this.clockOffset = this.serverTime - Date.now();
    this.limits = limitsFrom(isMap(frame["limits"]) ? frame["limits"] : null);
    this.delivery.page = Math.max(1, Math.min(this.delivery.page, this.limits.max_history_limit));
    const changed = this.friendState.load(frame);
    if (!initial) this.afterWelcome.push(...changed);
    const listed = new Map<string, Conversation>();
    for (const item of arrayOf(frame["convs"])) {
      if (isMap(item) && typeof item["conv"] === "string") listed.set(item["conv"], conversationFromWire(item));
    }
    const has = (conv: string): boolean => Object.prototype.hasOwnProperty.call(resumed, conv);
    for (const [convId, conv] of listed) {
      if (initial) {
        const given = Object.prototype.hasOwnProperty.call(this.initialResume, convId) ? this.initialResume[convId]! : conv.lastSeq;
        this.delivery.track(convId, Math.min(given, conv.lastSeq), conv.lastSeq, !has(convId));
      } else if (this.delivery.knows(convId)) {
        this.delivery.raiseWant(convId, conv.lastSeq, !has(convId));
      } else {
        // Created, or joined, while we were away: its messages are new to us.
        this.delivery.track(convId, Math.max(0, conv.lastSeq - this.backfill), conv.lastSeq, true);
        this.afterWelcome.push({ type: "conversation", conv: convId, conversation: conv, removed: false });
      }
      const oldWatch = !initial ? this.convs.get(convId)?.watch : undefined;
      if (!initial && conv.watch !== undefined && (oldWatch === undefined || conv.watch.ts > oldWatch.ts)) {
        this.afterWelcome.push(conv.watch);
      }
    }
    if (!initial) {
      for (const [convId, old] of this.convs) {
        if (!listed.has(convId)) {
          this.delivery.forget(convId);
          this.afterWelcome.push({ type: "conversation", conv: convId, conversation: old, removed: true });
        }
      }
    }
    this.convs = listed;
  }

  // -- incoming frames -----------------------------------------------------

  private dispatch(conn: Connection, frame: Frame): void {
    const t = frame.t;
    if (t === "ok" || t === "error") {
      this.answer(conn, frame);
    } else if (t === "msg") {
      const msg = messageFromWire(frame);
      this.seenSeq(msg.conv, msg.seq);
      this.delivery.onMessage(msg);
    } else if (t === "gap") {
      const conv = frame["conv"];
      const fromSeq = frame["from_seq"];
      const toSeq = frame["to_seq"];
      if (typeof conv === "string" && typeof fromSeq === "number" && typeof toSeq === "number") {
        this.seenSeq(conv, toSeq);
        this.delivery.onGap(conv, fromSeq, toSeq);
      }
    } else if (t === "conv") {
      this.onConv(frame);
    } else {
      const typed = eventFromWire(t, frame);
      if (typed === undefined) {
        const data: Record<string, unknown> = {};
        for (const key of Object.keys(frame)) if (key !== "t") setKey(data, key, frame[key]);
        this.stream.emit({ type: "unknown", t, data });
      } else {
        this.stream.emit(this.onSocial(typed));
      }
    }
  }

  private answer(conn: Connection, frame: Frame): void {
    const rid = frame["id"];
    if (rid === undefined || rid === null) {
      this.log.warn(`the hub refused a frame: ${String(frame["code"])} ${String(frame["message"])}`);
      return;
    }
    if (rid === conn.keepaliveId) {
      conn.keepaliveId = null;
      if (conn.keepaliveDeadline !== null) clearTimeout(conn.keepaliveDeadline);
      conn.keepaliveDeadline = null;
      return;
    }
    const call = typeof rid === "number" ? this.calls.get(rid) : undefined;
    if (call === undefined || call.done) return;
    if (frame.t === "error" && call.kind && frame["code"] === "rate_limited") {
      // Over the user's limit (another device spent it) or read late: wait as told,
      // then the same frame (the same cmid) goes out again.
      const retry = frame["retry_after_ms"];
      this.log.debug(`${call.t} refused for rate; again in ${String(retry)} ms`);
      call.disarm();
      call.sentOn = null;
      this.pacer.refused(call, typeof retry === "number" && retry >= 0 ? retry : null);
      return;
    }
    if (frame.t === "ok") {
      const result: Result = {};
      for (const key of Object.keys(frame)) if (key !== "t" && key !== "id") setKey(result, key, frame[key]);
      if (call.onOk !== null) {
        try {
          call.onOk(result);
        } catch (error) {
          this.log.error(`handling the result of '${call.t}' failed`, error);
        }
      }
      call.resolve(result);
    } else {
      call.reject(RequestFailed.fromWire(frame["code"], frame["message"], call.t, frame["retry_after_ms"]));
    }
  }

  private onConv(frame: Frame): void {
    const convId = frame["conv"];
    if (typeof convId !== "string") return;
    const previous = this.convs.get(convId);
    if (frame["removed"]) {
      this.convs.delete(convId);
      this.delivery.forget(convId);
      const gone = previous ?? conversationFromWire(frame);
      this.stream.emit({ type: "conversation", conv: convId, conversation: gone, removed: true });
      return;
    }
    const conv = conversationFromWire(frame, previous);
    this.convs.set(convId, conv);
    if (this.delivery.knows(convId)) this.delivery.raiseWant(convId, conv.lastSeq);
    else this.delivery.track(convId, conv.lastSeq, conv.lastSeq, false);
    this.stream.emit({ type: "conversation", conv: convId, conversation: conv, removed: false });
  }

  /** Keep the client's state in step with a social event; return what to emit. */
  private onSocial(event: ClientEvent): ClientEvent {
    if (event.type === "friend" || event.type === "presence") return this.friendState.apply(event);
    if (event.type === "read" && event.user === this.user) this.setRead(event.conv, event.seq);
    else if (event.type === "watch") this.setWatch(event);
    else if (event.type === "unsent") this.delivery.onUnsent(event.conv, event.seq);
    return event;
  }

  private setRead(convId: string, marker: number): void {
    const conv = this.convs.get(convId);
    if (conv === undefined || marker <= conv.readSeq) return;
    const unread = marker >= conv.lastSeq ? 0 : Math.min(conv.unread, conv.lastSeq - marker);
    this.convs.set(convId, withConversation(conv, { readSeq: marker, unread }));
  }

  private setWatch(state: WatchState): void {
    const conv = this.convs.get(state.conv);
    if (conv !== undefined && (conv.watch === undefined || state.ts >= conv.watch.ts)) {
      this.convs.set(state.conv, withConversation(conv, { watch: state }));
    }
  }

  private seenSeq(convId: string, seq: number): void {
    const conv = this.convs.get(convId);
    if (conv !== undefined && seq > conv.lastSeq) this.convs.set(convId, withConversation(conv, { lastSeq: seq }));
  }
}

function arrayOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A target field (one id, a list of ids, or nothing) as a list. */
function listed(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return arrayOf(value).filter((v): v is string => typeof v === "string");
}

/** Set an own property, even one named `__proto__`. */
function setKey(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
  else target[key] = value;
}

/**
 * Connect to the hub at `url` (`ws://host:port/ws`, or `wss://` behind TLS) and say
 * hello. Resolves with the connected {@link Client}; call `client.close()` at the end.
 *
 * ```ts
 * const client = await connect("wss://chat.example/ws", { tokenProvider: () => api.chatToken() });
 * client.on("message", (m) => render(m));
 * const sent = await client.sendText("hi bob", { to: "bob" });
 * ```
 */
export async function connect(url: string, options: ConnectOptions): Promise<Client> {
  return new Client(url, options).open();
}
