/**
 * The shared protocol vectors (protocol/vectors.json) hold for the JavaScript
 * codec and validator, as tests/protocol/test_vectors.py checks them for Python:
 * bytes decode to the value (or fail with the close code), the request validates
 * to the Python parser's result (or is refused with the same code, naming the
 * same field), and a canonical value encodes back to the same bytes.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";

import {
  DEFAULT_LIMITS,
  FrameError,
  FrameTooLarge,
  type Limits,
  RequestError,
  decodeFrame,
  encodeValue,
  validateRequest,
} from "clipwire-client";

import { REPO_ROOT } from "./helpers.js";

interface Vector {
  name: string;
  direction: "c2h" | "h2c";
  hex: string;
  limits?: Partial<Limits>;
  value?: unknown;
  canonical?: boolean;
  frame_error?: { close: number };
  request?: { parsed: Record<string, unknown> } | { error: string; field: string | null };
}

const file = JSON.parse(readFileSync(path.join(REPO_ROOT, "protocol", "vectors.json"), "utf8")) as {
  limits: Limits;
  vectors: Vector[];
};

/** A float from the vectors: JavaScript numbers cannot say 1.0, so keep it apart. */
class Float {
  constructor(readonly value: number) {}
}

/**
 * Tagged JSON to a JavaScript value. `floats` as Float markers (for the validator,
 * which must refuse a float where an integer goes) or as plain numbers (for
 * comparison with what the decoder returns).
 */
function untag(value: unknown, floats: "marker" | "number"): unknown {
  if (Array.isArray(value)) return value.map((v) => untag(v, floats));
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [key, item] = entries[0]!;
      if (key === "$int") {
        const big = BigInt(item as string);
        return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
      if (key === "$float") return floats === "marker" ? new Float(item as number) : (item as number);
      if (key === "$bin") return Uint8Array.from(Buffer.from(item as string, "hex"));
      if (key === "$ext") throw new Error("no ext values in decodable vectors");
      if (key === "$map") throw new Error("no non-string keys in decodable vectors");
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) {
      Object.defineProperty(out, k, { value: untag(v, floats), enumerable: true, configurable: true, writable: true });
    }
    return out;
  }
  return value;
}

function hasIntegralFloat(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasIntegralFloat);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]![0] === "$float") return Number.isInteger(entries[0]![1]);
    return entries.some(([, v]) => hasIntegralFloat(v));
  }
  return false;
}

const limitsOf = (v: Vector): Limits => ({ ...DEFAULT_LIMITS, ...(v.limits ?? {}) });
const bytesOf = (v: Vector): Uint8Array => Uint8Array.from(Buffer.from(v.hex, "hex"));

test("the file states the codec defaults", () => {
  assert.deepEqual(file.limits, { ...DEFAULT_LIMITS });
});

describe("protocol vectors", () => {
  for (const vector of file.vectors) {
    test(vector.name, () => {
      const bytes = bytesOf(vector);
      const limits = limitsOf(vector);
      if (vector.frame_error) {
        assert.throws(() => decodeFrame(bytes, limits), (error: unknown) => {
          assert.ok(error instanceof FrameError, String(error));
          assert.equal(error.closeCode, vector.frame_error!.close);
          assert.equal(error instanceof FrameTooLarge, vector.frame_error!.close === 1009);
          return true;
        });
        return;
      }
      const decoded = decodeFrame(bytes, limits);
      assert.deepStrictEqual(decoded, untag(vector.value, "number"));
      // A JavaScript number cannot say 1.0: an integral float re-encodes as an integer.
      if (vector.canonical && !hasIntegralFloat(vector.value)) {
        assert.equal(Buffer.from(encodeValue(decoded, { ...limits, max_frame_bytes: 1 << 20 })).toString("hex"), vector.hex);
      }
      const request = vector.request;
      if (vector.direction === "h2c" || request === undefined) {
        assert.equal(request, undefined);
        return;
      }
      const frame = untag(vector.value, "marker") as Record<string, unknown>;
      if ("error" in request) {
        assert.throws(() => validateRequest(frame, limits), (error: unknown) => {
          assert.ok(error instanceof RequestError, String(error));
          assert.equal(error.code, request.error);
          assert.equal(error.field, request.field);
          if (request.field !== null) assert.ok(error.reason.includes(`'${request.field}'`), error.reason);
          return true;
        });
      } else {
        const parsed = validateRequest(frame, limits);
        assert.deepStrictEqual(parsed, untag(request.parsed, "number"));
      }
    });
  }
});

test("every vector was checked", () => {
  assert.ok(file.vectors.length > 200, String(file.vectors.length));
  const valid = new Set(file.vectors.filter((v) => v.request && "parsed" in v.request).map((v) => (v.value as { t: string }).t));
  for (const t of ["hello", "send", "share", "history", "read", "react", "unsend", "group.create", "group.add",
    "group.remove", "group.leave", "friend.request", "friend.accept", "friend.remove", "block", "unblock",
    "presence", "watch", "refresh", "ping", "typing"]) {
    assert.ok(valid.has(t), t);
  }
});
