/**
 * Typed values the client hands to the application: messages, conversations and
 * events. Every event has a `type`, so `ClientEvent` is a discriminated union:
 *
 * ```ts
 * for await (const ev of client) {
 *   switch (ev.type) {
 *     case "message": console.log(ev.conv, ev.seq, ev.sender, ev.text); break;
 *     case "reaction": console.log(ev.user, ev.emoji, ev.atMs); break;
 *   }
 * }
 * ```
 *
 * Converters (`*FromWire`) tolerate fields a newer hub may add and wrong types
 * (they are dropped), as the Python SDK's `from_wire` constructors do.
 */

/** A card for one of the application's videos (SPEC.md 7.2). */
export interface VideoCard {
  id: string;
  url: string;
  thumb?: string;
  caption?: string;
  author?: string;
  /** Length of the video, in ms. */
  durationMs?: number;
  /** Start position, in ms (at most `durationMs`). */
  atMs?: number;
}

/** A reply to message `seq` of the same conversation; `atMs`: to that moment of its video. */
export interface Reply {
  seq: number;
  atMs?: number;
}

/** One emoji on a message, as `history` reports it. */
export interface ReactionSummary {
  emoji: string;
  /** How many users reacted with it. */
  count: number;
  /** Whether you did. */
  me: boolean;
  /** The distinct moments (ms) of a video share it was pinned to, sorted. */
  moments: number[];
}

/**
 * One stored message: a `msg` event, a `history` entry, or what a send returned.
 * `unsent`: a tombstone without a body; `hidden`: from a user you block, without a
 * body. Both keep their place, so seqs stay gap-free. `reactions` come with `history`.
 */
export interface Message {
  readonly type: "message";
  conv: string;
  seq: number;
  /** The sender's user id (the wire's `from`). */
  sender: string;
  /** When the hub accepted it (ms). Order by `seq`, not `ts`. */
  ts: number;
  kind: "text" | "video" | (string & {});
  text?: string;
  video?: VideoCard;
  reply?: Reply;
  cmid: string;
  unsent: boolean;
  hidden: boolean;
  reactions: ReactionSummary[];
}

/** Watch-together playback in `conv`: `by` set `videoId` at `posMs`, playing or not. */
export interface WatchState {
  readonly type: "watch";
  conv: string;
  by: string;
  videoId: string;
  posMs: number;
  playing: boolean;
  /** The hub's time of the update (last writer wins). While playing, the position
   * now is about `posMs + (server time - ts)`. */
  ts: number;
}

/** A conversation as the user sees it (welcome list and `conv` events). */
export interface Conversation {
  conv: string;
  kind: "dm" | "group" | (string & {});
  lastSeq: number;
  readSeq: number;
  unread: number;
  /** The other user of a DM. */
  peer?: string;
  /** A group's title (may be ""). */
  title?: string;
  /** A group's members, in join order. */
  members: string[];
  /** A group's owner. */
  owner?: string;
  watch?: WatchState;
  /** A short label: the peer of a DM, the title of a group. */
  name: string;
}

/** Whether `user` is online. `lastSeen` (ms) is when their last device left, if known. */
export interface Presence {
  readonly type: "presence";
  user: string;
  online: boolean;
  lastSeen: number | null;
}

/** A pending friend request: `"in"` from `user`, `"out"` from you to `user`. */
export interface FriendRequest {
  user: string;
  direction: "in" | "out" | (string & {});
}

/** A `conv` event: added to a conversation, removed from it (`removed`), or it changed. */
export interface ConversationChanged {
  readonly type: "conversation";
  conv: string;
  conversation: Conversation;
  removed: boolean;
}

/** `user` is typing in `conv` (show it for about five seconds). */
export interface Typing {
  readonly type: "typing";
  conv: string;
  user: string;
}

/** `user` has read `conv` up to `seq`; `user` may be you, on another device. */
export interface ReadReceipt {
  readonly type: "read";
  conv: string;
  user: string;
  seq: number;
}

/** `user` put (`on`) or took back an emoji on message `seq`; `atMs` pins it to a moment. */
export interface Reaction {
  readonly type: "reaction";
  conv: string;
  seq: number;
  user: string;
  emoji: string;
  on: boolean;
  atMs?: number;
}

/** Message `seq` of `conv` was taken back by its sender: drop its body. */
export interface Unsent {
  readonly type: "unsent";
  conv: string;
  seq: number;
}

/**
 * Your relation with `user` changed: `"requested"` (`direction` `"in"`: they asked
 * you; `"out"`: you asked them), `"accepted"` or `"removed"`. `was` is the relation
 * just before, as the client knew it: `"friends"`, `"in"`, `"out"` or null.
 */
export interface FriendEvent {
  readonly type: "friend";
  user: string;
  state: "requested" | "accepted" | "removed" | (string & {});
  direction?: "in" | "out" | (string & {});
  was: string | null;
}

/** The connection dropped or was closed; `reconnecting` says whether the client retries. */
export interface Disconnected {
  readonly type: "disconnected";
  code: number;
  reason: string;
  reconnecting: boolean;
}

/** A new connection said hello; its resume backlog and hole fills follow. */
export interface Reconnected {
  readonly type: "reconnected";
  session: string;
  attempts: number;
}

/** A hub event of a type this client does not know, as sent (`data` without `t`). */
export interface UnknownEvent {
  readonly type: "unknown";
  t: string;
  data: Record<string, unknown>;
}

/** What the event iterator and listeners receive. */
export type ClientEvent =
  | Message
  | ConversationChanged
  | Presence
  | Typing
  | ReadReceipt
  | Reaction
  | Unsent
  | WatchState
  | FriendEvent
  | UnknownEvent
  | Disconnected
  | Reconnected;

export type ClientEventType = ClientEvent["type"];
export type EventOf<K extends ClientEventType> = Extract<ClientEvent, { type: K }>;

/** One target of a share: `conv`/`seq`/`ts` on success, `error` (a code) if refused. */
export interface ShareResult {
  target: string;
  targetKind: "to" | "conv";
  conv?: string;
  seq?: number;
  ts?: number;
  error?: string;
  ok: boolean;
}

// ------------------------------------------------------------ wire to model

type Wire = Record<string, unknown>;

export function isMap(value: unknown): value is Wire {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function optStr(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function optInt(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

function int(value: unknown): number {
  return optInt(value) ?? 0;
}

function own(data: Wire, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(data, key) ? data[key] : undefined;
}

/** Drop `undefined` entries, so optional fields are absent rather than present-but-undefined. */
function compact<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}

export function cardFromWire(value: unknown): VideoCard | undefined {
  if (!isMap(value) || typeof own(value, "id") !== "string") return undefined;
  return compact({
    id: value["id"] as string,
    url: String(own(value, "url") ?? ""),
    thumb: optStr(own(value, "thumb")),
    caption: optStr(own(value, "caption")),
    author: optStr(own(value, "author")),
    durationMs: optInt(own(value, "duration_ms")),
    atMs: optInt(own(value, "at_ms")),
  });
}

export function cardToWire(card: VideoCard): Wire {
  return compact({
    id: card.id,
    url: card.url,
    thumb: card.thumb,
    caption: card.caption,
    author: card.author,
    duration_ms: card.durationMs,
    at_ms: card.atMs,
  });
}

export function replyToWire(reply: Reply): Wire {
  return reply.atMs === undefined || reply.atMs === null ? { seq: reply.seq } : { seq: reply.seq, at_ms: reply.atMs };
}

function replyFromWire(value: unknown): Reply | undefined {
  if (!isMap(value)) return undefined;
  const seq = optInt(own(value, "seq"));
  if (seq === undefined) return undefined;
  return compact({ seq, atMs: optInt(own(value, "at_ms")) });
}

function reactionFromWire(data: Wire): ReactionSummary {
  const moments = own(data, "moments");
  return {
    emoji: String(own(data, "emoji") ?? ""),
    count: int(own(data, "count")),
    me: Boolean(own(data, "me")),
    moments: Array.isArray(moments) ? moments.map(optInt).filter((m): m is number => m !== undefined) : [],
  };
}

export function messageFromWire(data: Wire): Message {
  const reactions = own(data, "reactions");
  return compact<Message>({
    type: "message",
    conv: String(own(data, "conv") ?? ""),
    seq: int(own(data, "seq")),
    sender: String(own(data, "from") ?? ""),
    ts: int(own(data, "ts")),
    kind: String(own(data, "kind") ?? "text"),
    text: optStr(own(data, "text")),
    video: cardFromWire(own(data, "video")),
    reply: replyFromWire(own(data, "reply")),
    cmid: String(own(data, "cmid") ?? ""),
    unsent: Boolean(own(data, "unsent")),
    hidden: Boolean(own(data, "hidden")),
    reactions: Array.isArray(reactions) ? reactions.filter(isMap).map(reactionFromWire) : [],
  });
}

/** A message `seq` of `conv` as a tombstone (its body gone). */
export function tombstone(msg: Message): Message {
  const { text: _text, video: _video, reply: _reply, ...rest } = msg;
  return { ...rest, unsent: true, reactions: [] };
}

export function watchFromWire(data: Wire): WatchState {
  return {
    type: "watch",
    conv: String(own(data, "conv") ?? ""),
    by: String(own(data, "by") ?? ""),
    videoId: String(own(data, "video_id") ?? ""),
    posMs: int(own(data, "pos_ms")),
    playing: Boolean(own(data, "playing")),
    ts: int(own(data, "ts")),
  };
}

function convName(conv: Omit<Conversation, "name">): string {
  if (conv.kind === "dm") return conv.peer || conv.conv;
  return conv.title || conv.conv;
}

/** From a welcome entry or a `conv` event, keeping what the event leaves out of `previous`. */
export function conversationFromWire(data: Wire, previous?: Conversation): Conversation {
  const members = own(data, "members");
  const convId = previous?.conv ?? String(own(data, "conv") ?? "");
  const base: Conversation = previous ?? {
    conv: convId, kind: String(own(data, "kind") ?? "group"), lastSeq: 0, readSeq: 0, unread: 0, members: [], name: convId,
  };
  const has = (key: string): boolean => Object.prototype.hasOwnProperty.call(data, key);
  const watch = own(data, "watch");
  const out: Omit<Conversation, "name"> = compact({
    conv: base.conv,
    kind: optStr(own(data, "kind")) ?? base.kind,
    lastSeq: Math.max(int(own(data, "last_seq")), base.lastSeq),
    readSeq: has("read_seq") ? int(own(data, "read_seq")) : base.readSeq,
    unread: has("unread") ? int(own(data, "unread")) : base.unread,
    peer: optStr(own(data, "peer")) || base.peer,
    title: has("title") ? optStr(own(data, "title")) : base.title,
    members: Array.isArray(members) ? members.filter((m): m is string => typeof m === "string") : base.members,
    owner: has("owner") ? optStr(own(data, "owner")) : base.owner,
    watch: isMap(watch) ? watchFromWire({ ...watch, conv: base.conv }) : base.watch,
  });
  return { ...out, name: convName(out) };
}

export function withConversation(conv: Conversation, changes: Partial<Omit<Conversation, "name" | "conv">>): Conversation {
  const out = { ...conv, ...changes };
  return { ...out, name: convName(out) };
}

export function presenceFromWire(data: Wire): Presence {
  return {
    type: "presence",
    user: String(own(data, "user") ?? ""),
    online: Boolean(own(data, "online")),
    lastSeen: optInt(own(data, "last_seen")) ?? null,
  };
}

export function shareResultFromWire(data: Wire): ShareResult {
  const targetKind = Object.prototype.hasOwnProperty.call(data, "to") ? "to" : "conv";
  const out = compact<ShareResult>({
    target: String(own(data, targetKind)),
    targetKind,
    conv: optStr(own(data, "conv")),
    seq: optInt(own(data, "seq")),
    ts: optInt(own(data, "ts")),
    error: optStr(own(data, "error")),
    ok: false,
  });
  out.ok = out.error === undefined && out.seq !== undefined;
  return out;
}

/** The typed event for a social-layer event frame; undefined for other types or bad fields. */
export function eventFromWire(t: string, data: Wire): ClientEvent | undefined {
  const conv = optStr(own(data, "conv"));
  const user = optStr(own(data, "user"));
  const seq = optInt(own(data, "seq"));
  switch (t) {
    case "presence":
      return user !== undefined ? presenceFromWire(data) : undefined;
    case "typing":
      return conv !== undefined && user !== undefined ? { type: "typing", conv, user } : undefined;
    case "read":
      return conv !== undefined && user !== undefined && seq !== undefined ? { type: "read", conv, user, seq } : undefined;
    case "reaction": {
      const emoji = optStr(own(data, "emoji"));
      if (conv === undefined || user === undefined || seq === undefined || emoji === undefined) return undefined;
      return compact<Reaction>({
        type: "reaction", conv, seq, user, emoji, on: Boolean(own(data, "on")), atMs: optInt(own(data, "at_ms")),
      });
    }
    case "unsent":
      return conv !== undefined && seq !== undefined ? { type: "unsent", conv, seq } : undefined;
    case "watch":
      return conv !== undefined && optStr(own(data, "video_id")) !== undefined ? watchFromWire(data) : undefined;
    case "friend": {
      const state = optStr(own(data, "state"));
      if (user === undefined || state === undefined) return undefined;
      return compact<FriendEvent>({ type: "friend", user, state, direction: optStr(own(data, "direction")), was: null });
    }
    default:
      return undefined;
  }
}
