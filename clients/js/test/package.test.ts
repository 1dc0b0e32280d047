/**
 * The package as published: ES modules with type declarations, one runtime
 * dependency, and nothing Node-only in what browsers and React Native load.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import * as api from "clipwire-client";

import { PACKAGE_ROOT } from "./helpers.js";

const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as Record<string, unknown>;
const dist = path.join(PACKAGE_ROOT, "dist");

test("package.json: an ES module package with exports, types and one dependency", () => {
  assert.equal(pkg["name"], "clipwire-client");
  assert.equal(pkg["type"], "module");
  assert.deepEqual(Object.keys(pkg["dependencies"] as object), ["@msgpack/msgpack"]);
  const exports = (pkg["exports"] as Record<string, Record<string, string>>)["."]!;
  assert.equal(exports["types"], "./dist/index.d.ts");
  assert.equal(exports["import"], "./dist/index.js");
  assert.ok(existsSync(path.join(dist, "index.js")) && existsSync(path.join(dist, "index.d.ts")));
});

test("the build imports nothing but itself and @msgpack/msgpack, and no Node API", () => {
  for (const name of readdirSync(dist).filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"))) {
    // Code only: doc comments show usage examples that import the package itself.
    const source = readFileSync(path.join(dist, name), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    const specifiers = [...source.matchAll(/(?:^|\s)(?:import|export)[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)]
      .map((m) => m[1] ?? m[2]!);
    for (const spec of specifiers) {
      assert.ok(spec.startsWith("./") || spec === "@msgpack/msgpack", `${name} imports ${spec}`);
    }
    assert.doesNotMatch(source, /\brequire\(|\bprocess\.|\bBuffer\b|node:/, name);
  }
});

test("the public API", () => {
  for (const name of ["connect", "Client", "newCmid", "decodeFrame", "encodeFrame", "validateRequest",
    "RequestFailed", "BadRequest", "Forbidden", "ClientClosed", "ConnectionLost", "RequestTimeout", "DEFAULT_LIMITS"]) {
    assert.ok(name in api, name);
  }
  assert.deepEqual([...api.REQUEST_TYPES].sort(), ["block", "friend.accept", "friend.remove", "friend.request",
    "group.add", "group.create", "group.leave", "group.remove", "hello", "history", "ping", "presence", "react",
    "read", "refresh", "send", "share", "typing", "unblock", "unsend", "watch"]);
});

test("codec: 64-bit integers, __proto__ keys and lone surrogates", () => {
  const frame = { t: "x", big: 2n ** 63n - 1n, ts: 1_795_825_577_123, neg: -(2 ** 40), small: 5 };
  const bytes = api.encodeFrame(frame);
  assert.deepEqual(api.decodeFrame(bytes), frame);
  const proto = api.decodeFrame(Uint8Array.from(Buffer.from("82a174a178a95f5f70726f746f5f5f01", "hex")));
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.deepEqual(Object.keys(proto), ["t", "__proto__"]);
  assert.throws(() => api.encodeFrame({ t: "send", text: "\ud800" }), api.FrameError);
  assert.throws(() => api.encodeFrame({ t: "x", b: new Uint8Array(1) }), api.FrameError);
  assert.throws(() => api.encodeFrame({ t: "x", v: [[[[[[[[1]]]]]]]] }), /nesting deeper than 8/);
  assert.equal(api.tokenExpiry("e30.eyJzdWIiOiJhIiwiZXhwIjoxNzk1OTExOTgyfQ.c2ln"), 1795911982);
});
