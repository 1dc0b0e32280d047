/**
 * Frames to bytes and back, within the limits the hub announces: the JavaScript
 * twin of `protocol/codec.py`.
 *
 * A frame is one binary WebSocket message holding exactly one msgpack map with
 * string keys and a string `t`. Encoding goes through `@msgpack/msgpack` after
 * the same checks the hub applies on its side, so the client never sends a frame
 * the hub would close the connection over. Decoding uses a small strict reader
 * rather than `@msgpack/msgpack`'s decoder, because the latter accepts what the
 * Python codec refuses (invalid UTF-8, which it replaces) and refuses what the
 * Python codec accepts (a `__proto__` key), reads a uint64 above 2^53 inexactly,
 * and has no depth limit: each would make the two codecs disagree on a shared
 * test vector (`protocol/vectors.json`).
 */

import { Encoder } from "@msgpack/msgpack";

import { ClipwireError } from "./errors.js";

/** Bounds on one frame; the keys and defaults of `protocol/codec.py`'s `Limits`. */
export interface Limits {
  max_frame_bytes: number;
  max_depth: number;
  max_str_len: number;
  max_bin_len: number;
  max_array_len: number;
  max_map_len: number;
  max_id_chars: number;
  max_text_chars: number;
  max_title_chars: number;
  max_url_chars: number;
  max_emoji_chars: number;
  max_share_targets: number;
  max_history_limit: number;
  max_group_members: number;
}

/** The codec's defaults. The hub announces its own values in `welcome.limits`. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  max_frame_bytes: 64 * 1024,
  max_depth: 8,
  max_str_len: 16 * 1024,
  max_bin_len: 0,
  max_array_len: 1024,
  max_map_len: 1024,
  max_id_chars: 128,
  max_text_chars: 4000,
  max_title_chars: 100,
  max_url_chars: 2048,
  max_emoji_chars: 32,
  max_share_targets: 100,
  max_history_limit: 100,
  max_group_members: 1000,
});

/** `DEFAULT_LIMITS` with the numeric entries of `overrides` (e.g. `welcome.limits`) applied. */
export function limitsFrom(overrides?: Readonly<Record<string, unknown>> | null): Limits {
  const out: Limits = { ...DEFAULT_LIMITS };
  if (overrides) {
    for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
      const value = overrides[key];
      if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) out[key] = value;
    }
  }
  return out;
}

/** A decoded frame: a map with a string `t`. */
export interface Frame {
  t: string;
  [key: string]: unknown;
}

/** The bytes are not a readable Clipwire frame; the hub closes with `closeCode`. */
export class FrameError extends ClipwireError {
  readonly closeCode: number = 4003;
  constructor(readonly reason: string) {
    super(reason);
    this.name = "FrameError";
  }
}

/** The frame is bigger than `max_frame_bytes`; the hub closes with 1009. */
export class FrameTooLarge extends FrameError {
  override readonly closeCode: number = 1009;
  constructor(reason: string) {
    super(reason);
    this.name = "FrameTooLarge";
  }
}

// ------------------------------------------------------------------ decoding

const TWO_32 = 4294967296;

class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array, private readonly limits: Limits) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new FrameError("not a valid msgpack value (truncated)");
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  private u64(): number | bigint {
    this.need(8);
    const high = this.view.getUint32(this.pos);
    const low = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (high < 0x200000) return high * TWO_32 + low; // below 2^53: exact as a number
    return (BigInt(high) << 32n) | BigInt(low);
  }

  private i64(): number | bigint {
    this.need(8);
    const high = this.view.getInt32(this.pos);
    const low = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (high >= -0x200000 && high < 0x200000) return high * TWO_32 + low;
    return (BigInt(high) << 32n) | BigInt(low);
  }

  read(depth: number): unknown {
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xc7: return this.ext(this.u8());
      case 0xc8: return this.ext(this.u16());
      case 0xc9: return this.ext(this.u32());
      case 0xca: { this.need(4); const v = this.view.getFloat32(this.pos); this.pos += 4; return v; }
      case 0xcb: { this.need(8); const v = this.view.getFloat64(this.pos); this.pos += 8; return v; }
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.u64();
      case 0xd0: { const v = this.u8(); return v >= 0x80 ? v - 0x100 : v; }
      case 0xd1: { const v = this.u16(); return v >= 0x8000 ? v - 0x10000 : v; }
      case 0xd2: { this.need(4); const v = this.view.getInt32(this.pos); this.pos += 4; return v; }
      case 0xd3: return this.i64();
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      default: throw new FrameError(`not a valid msgpack value (byte 0x${b.toString(16)})`);
    }
  }

  private str(length: number): string {
    if (length > this.limits.max_str_len) {
      throw new FrameError(`not a valid msgpack value (string of ${length} bytes exceeds ${this.limits.max_str_len})`);
    }
    this.need(length);
    const start = this.pos;
    this.pos += length;
    return utf8Decode(this.bytes, start, this.pos);
  }

  private bin(length: number): Uint8Array {
    if (length > this.limits.max_bin_len) {
      throw new FrameError("not a valid msgpack value (bin longer than max_bin_len)");
    }
    this.need(length);
    if (this.limits.max_bin_len === 0) throw new FrameError("bin and ext values are not allowed");
    const out = this.bytes.slice(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  private ext(length: number): never {
    // The Python codec decodes with max_ext_len=0 and refuses any ext value.
    if (length > 0) throw new FrameError("not a valid msgpack value (ext longer than 0)");
    this.need(1);
    throw new FrameError("bin and ext values are not allowed");
  }

  private array(length: number, depth: number): unknown[] {
    if (length > this.limits.max_array_len) {
      throw new FrameError(`not a valid msgpack value (array of ${length} exceeds ${this.limits.max_array_len})`);
    }
    if (depth > this.limits.max_depth) throw new FrameError(`nesting deeper than ${this.limits.max_depth}`);
    const out: unknown[] = [];
    for (let i = 0; i < length; i++) out.push(this.read(depth + 1));
    return out;
  }

  private map(length: number, depth: number): Record<string, unknown> {
    if (length > this.limits.max_map_len) {
      throw new FrameError(`not a valid msgpack value (map of ${length} exceeds ${this.limits.max_map_len})`);
    }
    if (depth > this.limits.max_depth) throw new FrameError(`nesting deeper than ${this.limits.max_depth}`);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < length; i++) {
      const key = this.read(depth + 1);
      if (typeof key !== "string") throw new FrameError("map keys must be strings");
      const value = this.read(depth + 1);
      if (key === "__proto__") {
        Object.defineProperty(out, key, { value, enumerable: true, configurable: true, writable: true });
      } else {
        out[key] = value;
      }
    }
    return out;
  }
}

/** Strict UTF-8, as Python decodes it: no overlongs, no surrogates, nothing above U+10FFFF. */
export function utf8Decode(bytes: Uint8Array, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return chunked(bytes.subarray(start, end));
  const units: number[] = [];
  let i = start;
  const bad = (): never => {
    throw new FrameError("not a valid msgpack value (invalid UTF-8 in a string)");
  };
  const cont = (lo = 0x80, hi = 0xbf): number => {
    if (i >= end) bad();
    const c = bytes[i++]!;
    if (c < lo || c > hi) bad();
    return c & 0x3f;
  };
  while (i < end) {
    const b0 = bytes[i++]!;
    let cp: number;
    if (b0 < 0x80) cp = b0;
    else if (b0 >= 0xc2 && b0 <= 0xdf) cp = ((b0 & 0x1f) << 6) | cont();
    else if (b0 >= 0xe0 && b0 <= 0xef) {
      const lo = b0 === 0xe0 ? 0xa0 : 0x80;
      const hi = b0 === 0xed ? 0x9f : 0xbf;
      const c1 = cont(lo, hi);
      cp = ((b0 & 0x0f) << 12) | (c1 << 6) | cont();
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      const lo = b0 === 0xf0 ? 0x90 : 0x80;
      const hi = b0 === 0xf4 ? 0x8f : 0xbf;
      const c1 = cont(lo, hi);
      const c2 = cont();
      cp = ((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | cont();
    } else {
      return bad();
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      units.push(cp);
    }
  }
  return chunked(units);
}

function chunked(units: ArrayLike<number>): string {
  let out = "";
  for (let i = 0; i < units.length; i += 4096) {
    const part = Array.prototype.slice.call(units, i, i + 4096) as number[];
    out += String.fromCharCode.apply(null, part);
  }
  return out;
}

function asBytes(data: Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/**
 * Decode one msgpack value within `limits`, as `codec.decode_any` does; throw
 * {@link FrameError} (or {@link FrameTooLarge}) otherwise. Integers beyond 2^53 come
 * back as `bigint`, floats as numbers.
 */
export function decodeValue(data: Uint8Array | ArrayBuffer | ArrayBufferView, limits: Limits = DEFAULT_LIMITS): unknown {
  const bytes = asBytes(data);
  if (bytes.length > limits.max_frame_bytes) {
    throw new FrameTooLarge(`frame of ${bytes.length} bytes exceeds ${limits.max_frame_bytes}`);
  }
  const reader = new Reader(bytes, limits);
  const value = reader.read(1);
  if (reader.pos !== bytes.length) throw new FrameError("trailing bytes after the msgpack value");
  return value;
}

/** Decode one frame: a map with a string `t` (`codec.decode`). */
export function decodeFrame(data: Uint8Array | ArrayBuffer | ArrayBufferView, limits: Limits = DEFAULT_LIMITS): Frame {
  const value = decodeValue(data, limits);
  if (!isPlainMap(value)) throw new FrameError(`frame must be a msgpack map, not ${kindOf(value)}`);
  if (typeof value["t"] !== "string") throw new FrameError("frame must carry a string 't'");
  return value as Frame;
}

// ------------------------------------------------------------------ encoding

const encoder = new Encoder({ ignoreUndefined: true });
const bigEncoder = new Encoder({ ignoreUndefined: true, useBigInt64: true });
const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;

/** A plain `{...}` map (or one with a null prototype), as opposed to arrays, bytes or class instances. */
export function isPlainMap(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null || value === undefined) return "nil";
  if (value instanceof Uint8Array) return "a bytes";
  if (typeof value === "number") return Number.isInteger(value) ? "an int" : "a float";
  return `a ${typeof value}`;
}

/** UTF-8 length of a string, or -1 if it holds a lone surrogate (not encodable as UTF-8). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return -1;
      n += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else n += 3;
  }
  return n;
}

/**
 * Check an outgoing value the way the hub's decoder will: only nil, booleans,
 * numbers, strings, arrays and string-keyed maps; strings of valid Unicode within
 * `max_str_len` bytes; arrays and maps within their entry limits; nesting within
 * `max_depth`. Returns whether the value needs 64-bit integer encoding.
 */
export function checkValue(value: unknown, limits: Limits = DEFAULT_LIMITS): boolean {
  let big = false;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (item === null || item === undefined || typeof item === "boolean") continue;
    if (typeof item === "number") {
      if (!Number.isFinite(item)) throw new FrameError("numbers must be finite");
      if (Number.isInteger(item) && !Number.isSafeInteger(item)) {
        if (item < -(2 ** 63) || item >= 2 ** 64) throw new FrameError("integer out of the 64-bit range");
        big = true;
      }
      continue;
    }
    if (typeof item === "bigint") {
      if (item < MIN_INT64 || item > MAX_UINT64) throw new FrameError("integer out of the 64-bit range");
      big = true;
      continue;
    }
    if (typeof item === "string") {
      const bytes = utf8Length(item);
      if (bytes < 0) throw new FrameError("strings must be valid Unicode (a lone surrogate cannot be sent)");
      if (bytes > limits.max_str_len) {
        throw new FrameError(`a string of ${bytes} bytes exceeds max_str_len ${limits.max_str_len}`);
      }
      continue;
    }
    if (Array.isArray(item)) {
      if (depth > limits.max_depth) throw new FrameError(`nesting deeper than ${limits.max_depth}`);
      if (item.length > limits.max_array_len) {
        throw new FrameError(`an array of ${item.length} exceeds max_array_len ${limits.max_array_len}`);
      }
      for (const v of item) stack.push([v, depth + 1]);
      continue;
    }
    if (isPlainMap(item)) {
      if (depth > limits.max_depth) throw new FrameError(`nesting deeper than ${limits.max_depth}`);
      const keys = Object.keys(item).filter((k) => item[k] !== undefined);
      if (keys.length > limits.max_map_len) {
        throw new FrameError(`a map of ${keys.length} exceeds max_map_len ${limits.max_map_len}`);
      }
      for (const key of keys) {
        stack.push([key, depth + 1], [item[key], depth + 1]);
      }
      continue;
    }
    throw new FrameError(`cannot send ${kindOf(item)}: bin and ext values are not allowed`);
  }
  return big;
}

function widen(value: unknown): unknown {
  // @msgpack/msgpack with useBigInt64 writes numbers beyond 32 bits as floats:
  // hand it bigints instead, so integers keep msgpack's smallest integer format.
  if (typeof value === "number") {
    return Number.isInteger(value) && (value >= TWO_32 || value < -0x80000000) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map(widen);
  if (isPlainMap(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      const v = widen(value[key]);
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, enumerable: true, configurable: true, writable: true });
      else out[key] = v;
    }
    return out;
  }
  return value;
}

/**
 * Encode one value within `limits` (see {@link checkValue}); `undefined` map
 * entries are left out. Throws {@link FrameError}, or {@link FrameTooLarge} over
 * `max_frame_bytes`.
 */
export function encodeValue(value: unknown, limits: Limits = DEFAULT_LIMITS): Uint8Array {
  const big = checkValue(value, limits);
  const bytes = big ? bigEncoder.encode(widen(value)) : encoder.encode(value);
  if (bytes.length > limits.max_frame_bytes) {
    throw new FrameTooLarge(`frame of ${bytes.length} bytes exceeds ${limits.max_frame_bytes}`);
  }
  return bytes;
}

/** Encode one frame (a map with a string `t`) within `limits`. */
export function encodeFrame(frame: Frame, limits: Limits = DEFAULT_LIMITS): Uint8Array {
  if (!isPlainMap(frame) || typeof frame.t !== "string") throw new FrameError("frame must be a map with a string 't'");
  return encodeValue(frame, limits);
}
