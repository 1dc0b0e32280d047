/**
 * Request validation: the JavaScript twin of `protocol/frames.py`'s `parse_request`.
 *
 * `validateRequest(frame, limits)` checks a frame the way the hub will, in the same
 * order, and throws a {@link RequestError} naming the same field with the same
 * message; otherwise it returns the request in the normalised form of the Python
 * dataclasses (`{type: "Send", id, cmid, to, conv, kind, text, video, reply}`,
 * absent fields as `null`, defaults applied, repeated ids dropped). The client runs
 * it on every request before sending, so a request the hub would refuse never
 * leaves the device, and `protocol/vectors.json` holds both implementations to it.
 *
 * Integers are JavaScript numbers (safe integers) or bigints up to 2^63 - 1. A
 * JavaScript number cannot tell `1.0` from `1`; the encoder writes integral
 * numbers as msgpack integers, so the hub's "floats are refused" rule cannot be
 * broken from here.
 */

import { DEFAULT_LIMITS, type Limits, isPlainMap } from "./codec.js";
import { type ErrorCode, RequestError } from "./errors.js";

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = "clipwire.v1";
export const MAX_UINT = 2n ** 63n - 1n;

/** Request types that are signals: never answered, not even with an error. */
export const SIGNALS: ReadonlySet<string> = new Set(["typing"]);

/** A request in the normalised form of `protocol/frames.py` (`type` is its class name). */
export interface ParsedRequest {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface ParsedVideoCard {
  id: string;
  url: string;
  thumb: string | null;
  caption: string | null;
  author: string | null;
  duration_ms: number | bigint | null;
  at_ms: number | bigint | null;
}

function bad(message: string, field: string | null): RequestError {
  return new RequestError("bad_request", message, field);
}

// ------------------------------------------------------------ characters

/** Python's `len(str)`: code points, not UTF-16 units. */
export function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

// Python's str.isprintable(): nothing from the categories C* (Cc, Cf, Cs, Co, Cn)
// or Z* (Zs, Zl, Zp), except the ASCII space. A lone surrogate matches \p{Cs}.
// Built at run time: an engine without Unicode property escapes (older Hermes)
// must still load this module. It then falls back to the BMP controls, format
// characters, separators and private use area, and lets unassigned code points
// through; the hub stays the authority.
const NOT_PRINTABLE: RegExp = (() => {
  try {
    return new RegExp("[\\p{C}\\p{Z}]", "u");
  } catch {
    return /[\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb]/;
  }
})();

/** Python's `str.isprintable()` (by this JavaScript engine's Unicode version). */
export function isPrintable(s: string): boolean {
  if (!wellFormed(s)) return false;
  if (!NOT_PRINTABLE.test(s)) return true;
  for (const ch of s) {
    if (ch !== " " && NOT_PRINTABLE.test(ch)) return false;
  }
  return true;
}

/** No lone surrogates: the string can be encoded as UTF-8. */
function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

// ------------------------------------------------------------ value checks

function isUint(value: unknown): value is number | bigint {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 && value < 2 ** 63;
  if (typeof value === "bigint") return value >= 0n && value <= MAX_UINT;
  return false;
}

function uint(value: unknown, name: string): number | bigint {
  if (!isUint(value)) throw bad(`'${name}' must be an unsigned integer`, name);
  return value;
}

function ident(value: unknown, name: string, limits: Limits): string {
  if (typeof value !== "string" || value.length === 0 || codePoints(value) > limits.max_id_chars) {
    throw bad(`'${name}' must be a string of 1 to ${limits.max_id_chars} characters`, name);
  }
  if (!isPrintable(value)) throw bad(`'${name}' must not contain control characters`, name);
  return value;
}

function text(value: unknown, name: string, maxChars: number): string {
  if (typeof value !== "string") throw bad(`'${name}' must be a string`, name);
  if (codePoints(value) > maxChars) throw bad(`'${name}' is longer than ${maxChars} characters`, name);
  if (!wellFormed(value)) throw bad(`'${name}' must be valid Unicode (it holds a lone surrogate)`, name);
  return value;
}

// Python's urllib.parse.urlsplit, as far as `_url` depends on it.
const C0_OR_SPACE = /^[\x00-\x20]+/;
const SCHEME_CHARS = /^[A-Za-z0-9+\-.]*$/;

function splitUrl(url: string): { scheme: string; netloc: string } | null {
  let rest = url.replace(C0_OR_SPACE, "").replace(/[\t\r\n]/g, "");
  let scheme = "";
  let netloc = "";
  const colon = rest.indexOf(":");
  if (colon > 0 && /^[A-Za-z]/.test(rest) && SCHEME_CHARS.test(rest.slice(0, colon))) {
    scheme = rest.slice(0, colon).toLowerCase();
    rest = rest.slice(colon + 1);
  }
  if (rest.startsWith("//")) {
    let end = rest.length;
    for (const c of "/?#") {
      const at = rest.indexOf(c, 2);
      if (at >= 0) end = Math.min(end, at);
    }
    netloc = rest.slice(2, end);
    const open = netloc.includes("[");
    const close = netloc.includes("]");
    if (open !== close) return null; // "Invalid IPv6 URL"
    if (open && close) {
      const after = netloc.slice(netloc.indexOf("[") + 1);
      const host = after.includes("]") ? after.slice(0, after.indexOf("]")) : after;
      if (!bracketedHostOk(host)) return null;
    }
  }
  if (!netlocOk(netloc)) return null;
  return { scheme, netloc };
}

function bracketedHostOk(host: string): boolean {
  if (host.startsWith("v")) return /^v[a-fA-F0-9]+\.[\s\S]+$/.test(host);
  if (isIPv4(host)) return false; // "An IPv4 address cannot be in brackets"
  return isIPv6(host);
}

function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255 && (p === "0" || p[0] !== "0"));
}

function isIPv6(address: string): boolean {
  let s = address;
  const pct = s.indexOf("%");
  if (pct >= 0) {
    const scope = s.slice(pct + 1);
    if (!scope || scope.includes("%")) return false;
    s = s.slice(0, pct);
  }
  const parts = s.split(":");
  if (parts.length < 3) return false;
  let maxParts = 8;
  if (parts[parts.length - 1]!.includes(".")) {
    if (!isIPv4(parts.pop()!)) return false;
    parts.push("0", "0");
    maxParts = 8;
  }
  if (parts.length > maxParts + 1) return false;
  let skip: number | null = null;
  for (let i = 1; i < parts.length - 1; i++) {
    if (parts[i] === "") {
      if (skip !== null) return false;
      skip = i;
    }
  }
  let hextets: string[];
  if (skip !== null) {
    let lead = skip;
    let tail = parts.length - skip - 1;
    if (parts[0] === "") {
      lead--;
      if (lead) return false;
    }
    if (parts[parts.length - 1] === "") {
      tail--;
      if (tail) return false;
    }
    if (lead + tail >= maxParts) return false;
    hextets = [...parts.slice(0, lead), ...parts.slice(parts.length - tail)];
  } else {
    if (parts.length !== maxParts) return false;
    if (parts[0] === "" || parts[parts.length - 1] === "") return false;
    hextets = parts;
  }
  return hextets.every((h) => /^[0-9a-fA-F]{1,4}$/.test(h));
}

function netlocOk(netloc: string): boolean {
  // urllib's _checknetloc: a non-ASCII netloc must not gain '/?#@:' under NFKC.
  if (!netloc || /^[\x00-\x7f]*$/.test(netloc) || typeof netloc.normalize !== "function") return true;
  const n = netloc.replace(/[@:#?]/g, "");
  const normal = n.normalize("NFKC");
  if (n === normal) return true;
  return !/[/?#@:]/.test(normal);
}

function url(value: unknown, name: string, limits: Limits): string {
  const out = text(value, name, limits.max_url_chars);
  const parts = splitUrl(out);
  if (parts === null || (parts.scheme !== "https" && parts.scheme !== "http") || !parts.netloc) {
    throw bad(`'${name}' must be an http or https URL`, name);
  }
  return out;
}

// ------------------------------------------------------------ fields

class Fields {
  constructor(readonly frame: Record<string, unknown>, readonly limits: Limits) {}

  get(name: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.frame, name) ? this.frame[name] : undefined;
  }

  /** `nil means absent`: null and undefined both count as missing. */
  private opt(name: string): unknown {
    const value = this.get(name);
    return value === null ? undefined : value;
  }

  ident(name: string): string {
    const value = this.opt(name);
    if (value === undefined) throw bad(`missing '${name}'`, name);
    return ident(value, name, this.limits);
  }

  optIdent(name: string): string | null {
    const value = this.opt(name);
    return value === undefined ? null : ident(value, name, this.limits);
  }

  idents(name: string, required = true, maxItems?: number): string[] {
    const value = this.opt(name);
    if (value === undefined) {
      if (required) throw bad(`missing '${name}'`, name);
      return [];
    }
    if (!Array.isArray(value)) throw bad(`'${name}' must be an array of strings`, name);
    const bound = maxItems ?? this.limits.max_array_len;
    if (value.length > bound) throw bad(`'${name}' has more than ${bound} entries`, name);
    const out: string[] = [];
    const seen = new Set<string>();
    for (const item of value) {
      const id = ident(item, `${name}[]`, this.limits);
      if (!seen.has(id)) {
        seen.add(id);
        out.push(id);
      }
    }
    return out;
  }

  text(name: string, maxChars: number, required = false): string | null {
    const value = this.opt(name);
    if (value === undefined) {
      if (required) throw bad(`missing '${name}'`, name);
      return null;
    }
    return text(value, name, maxChars);
  }

  uint(name: string): number | bigint {
    const value = this.opt(name);
    if (value === undefined) throw bad(`missing '${name}'`, name);
    return uint(value, name);
  }

  optUint(name: string): number | bigint | null {
    const value = this.opt(name);
    return value === undefined ? null : uint(value, name);
  }

  boolean(name: string): boolean {
    const value = this.get(name);
    if (typeof value !== "boolean") throw bad(`'${name}' must be true or false`, name);
    return value;
  }
}

/** The frame's `id` if it is a valid one (`frames.request_id`). */
export function requestId(frame: Record<string, unknown>): number | bigint | null {
  const value = frame["id"];
  return isUint(value) ? value : null;
}

/** Validate a video card (`frames.parse_video_card`). */
export function validateVideoCard(value: unknown, limits: Limits = DEFAULT_LIMITS, name = "video"): ParsedVideoCard {
  if (!isPlainMap(value)) throw bad(`'${name}' must be a map`, name);
  const get = (key: string): unknown => {
    const item = Object.prototype.hasOwnProperty.call(value, key) ? value[key] : undefined;
    return item === null ? undefined : item;
  };
  const opt = <T>(key: string, check: (v: unknown, n: string) => T): T | null => {
    const item = get(key);
    return item === undefined ? null : check(item, `${name}.${key}`);
  };
  if (get("id") === undefined) throw bad(`missing '${name}.id'`, `${name}.id`);
  const card: ParsedVideoCard = {
    id: ident(get("id"), `${name}.id`, limits),
    url: url(value["url"], `${name}.url`, limits),
    thumb: opt("thumb", (v, n) => url(v, n, limits)),
    caption: opt("caption", (v, n) => text(v, n, limits.max_text_chars)),
    author: opt("author", (v, n) => ident(v, n, limits)),
    duration_ms: opt("duration_ms", uint),
    at_ms: opt("at_ms", uint),
  };
  if (card.at_ms !== null && card.duration_ms !== null && card.at_ms > card.duration_ms) {
    throw bad(`'${name}.at_ms' lies beyond '${name}.duration_ms'`, `${name}.at_ms`);
  }
  return card;
}

function reply(value: unknown): { seq: number | bigint; at_ms: number | bigint | null } | null {
  if (value === null || value === undefined) return null;
  if (!isPlainMap(value)) throw bad("'reply' must be a map {seq, at_ms?}", "reply");
  const seq = uint(value["seq"], "reply.seq");
  const atMs = value["at_ms"];
  return { seq, at_ms: atMs === null || atMs === undefined ? null : uint(atMs, "reply.at_ms") };
}

/** Validate a `hello` frame (`frames.parse_hello`). */
export function validateHello(frame: Record<string, unknown>, limits: Limits = DEFAULT_LIMITS): ParsedRequest {
  const f = new Fields(frame, limits);
  const token = f.get("token");
  if (typeof token !== "string" || token.length === 0) {
    throw new RequestError("unauthorized", "missing 'token'", "token");
  }
  let resumeValue = f.get("resume");
  if (resumeValue === null || resumeValue === undefined) resumeValue = {};
  if (!isPlainMap(resumeValue)) throw bad("'resume' must be a map of conversation to seq", "resume");
  const resume: Record<string, number | bigint> = {};
  for (const conv of Object.keys(resumeValue)) {
    ident(conv, "resume key", limits);
    const seq = uint(resumeValue[conv], `resume[${conv}]`);
    Object.defineProperty(resume, conv, { value: seq, enumerable: true, configurable: true, writable: true });
  }
  if (!wellFormed(token)) throw bad("'token' must be valid Unicode (it holds a lone surrogate)", "token");
  return { type: "Hello", id: f.uint("id"), v: f.uint("v"), token, device: f.optIdent("device"), resume };
}

function send(f: Fields): ParsedRequest {
  const to = f.optIdent("to");
  const conv = f.optIdent("conv");
  if ((to === null) === (conv === null)) throw bad("give exactly one of 'to' and 'conv'", "to");
  let kind = f.get("kind");
  if (kind === null || kind === undefined) kind = "text";
  const body = f.text("text", f.limits.max_text_chars);
  const videoValue = f.get("video");
  let video: ParsedVideoCard | null = null;
  if (kind === "text") {
    if (!body) throw bad("a text message needs a non-empty 'text'", "text");
    if (videoValue !== null && videoValue !== undefined) {
      throw bad("a text message carries no 'video'; use kind 'video'", "video");
    }
  } else if (kind === "video") {
    if (videoValue === null || videoValue === undefined) throw bad("a video message needs a 'video' card", "video");
    video = validateVideoCard(videoValue, f.limits);
  } else {
    throw bad("'kind' must be 'text' or 'video'", "kind");
  }
  return {
    type: "Send", id: f.uint("id"), cmid: f.ident("cmid"), to, conv, kind,
    text: body || null, video, reply: reply(f.get("reply")),
  };
}

function share(f: Fields): ParsedRequest {
  const bound = f.limits.max_share_targets;
  const to = f.idents("to", false, bound);
  const convs = f.idents("convs", false, bound);
  if (to.length === 0 && convs.length === 0) throw bad("give at least one target in 'to' or 'convs'", "to");
  if (to.length + convs.length > bound) throw bad(`a share reaches at most ${bound} targets`, null);
  const video = f.get("video");
  if (video === null || video === undefined) throw bad("missing 'video'", "video");
  const id = f.uint("id");
  const cmid = f.ident("cmid");
  const card = validateVideoCard(video, f.limits);
  return { type: "Share", id, cmid, video: card, to, convs, text: f.text("text", f.limits.max_text_chars) || null };
}

function history(f: Fields): ParsedRequest {
  let limit = f.optUint("limit");
  if (limit === null) limit = 50;
  if (!(limit > 0 && limit <= f.limits.max_history_limit)) {
    throw bad(`'limit' must be between 1 and ${f.limits.max_history_limit}`, "limit");
  }
  return { type: "History", id: f.uint("id"), conv: f.ident("conv"), before: f.optUint("before"), limit };
}

function react(f: Fields): ParsedRequest {
  const emoji = f.text("emoji", f.limits.max_emoji_chars, true) ?? "";
  // U+200D (zero width joiner) glues emoji sequences; Python's isprintable() refuses it.
  const visible = emoji.replace(/\u200d/g, "");
  if (!visible || !isPrintable(visible) || /^ +$/.test(visible)) {
    throw bad("'emoji' must be a non-empty printable string", "emoji");
  }
  return {
    type: "React", id: f.uint("id"), conv: f.ident("conv"), seq: f.uint("seq"), emoji,
    on: f.boolean("on"), at_ms: f.optUint("at_ms"),
  };
}

function groupCreate(f: Fields): ParsedRequest {
  const title = f.text("title", f.limits.max_title_chars) || "";
  return { type: "GroupCreate", id: f.uint("id"), members: f.idents("members", false), title };
}

function ping(f: Fields): ParsedRequest {
  const id = f.get("id");
  return { type: "Ping", id: id === null || id === undefined ? null : f.uint("id") };
}

function refresh(f: Fields): ParsedRequest {
  const token = f.get("token");
  if (typeof token !== "string" || token.length === 0) throw bad("missing 'token'", "token");
  if (!wellFormed(token)) throw bad("'token' must be valid Unicode (it holds a lone surrogate)", "token");
  return { type: "Refresh", id: f.uint("id"), token };
}

const user = (type: string) => (f: Fields): ParsedRequest => ({ type, id: f.uint("id"), user: f.ident("user") });
const convSeq = (type: string) => (f: Fields): ParsedRequest => ({ type, id: f.uint("id"), conv: f.ident("conv"), seq: f.uint("seq") });
const members = (type: string) => (f: Fields): ParsedRequest => ({ type, id: f.uint("id"), conv: f.ident("conv"), members: f.idents("members") });

const PARSERS: Record<string, (f: Fields) => ParsedRequest> = {
  send,
  share,
  history,
  read: convSeq("Read"),
  react,
  unsend: convSeq("Unsend"),
  "group.create": groupCreate,
  "group.add": members("GroupAdd"),
  "group.remove": members("GroupRemove"),
  "group.leave": (f) => ({ type: "GroupLeave", id: f.uint("id"), conv: f.ident("conv") }),
  "friend.request": user("FriendRequest"),
  "friend.accept": user("FriendAccept"),
  "friend.remove": user("FriendRemove"),
  block: user("Block"),
  unblock: user("Unblock"),
  presence: (f) => ({ type: "PresenceQuery", id: f.uint("id"), users: f.idents("users") }),
  watch: (f) => ({
    type: "Watch", id: f.uint("id"), conv: f.ident("conv"), video_id: f.ident("video_id"),
    pos_ms: f.uint("pos_ms"), playing: f.boolean("playing"),
  }),
  refresh,
  ping,
  typing: (f) => ({ type: "Typing", conv: f.ident("conv") }),
  hello: (f) => validateHello(f.frame, f.limits),
};

/** The request types the hub serves. */
export const REQUEST_TYPES: readonly string[] = Object.freeze(Object.keys(PARSERS));

/**
 * Validate a request frame as the hub will (`frames.parse_request`); throw a
 * {@link RequestError} with the hub's code, message and the field at fault.
 */
export function validateRequest(frame: Record<string, unknown>, limits: Limits = DEFAULT_LIMITS): ParsedRequest {
  const t = frame["t"];
  if (typeof t !== "string") throw bad("frame must carry a string 't'", "t");
  const parser = Object.prototype.hasOwnProperty.call(PARSERS, t) ? PARSERS[t] : undefined;
  if (parser === undefined) throw bad(`unknown request type '${t.slice(0, 40)}'`, null);
  if (!SIGNALS.has(t) && t !== "ping" && requestId(frame) === null) {
    throw bad("a request needs an unsigned integer 'id'", "id");
  }
  return parser(new Fields(frame, limits));
}

export type { ErrorCode };
