/**
 * Bursts of sends against a hub at its real rate limits (the hub's defaults unless a
 * test sets its own): paced, delivered once and in order, never closed with 4008.
 */

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import type { Client, Message } from "clipwire-client";

import { Clients, Hub, Inbox } from "./helpers.js";

const clients = new Clients();
const hubs: Hub[] = [];
afterEach(async () => {
  await clients.closeAll();
  for (const hub of hubs.splice(0)) await hub.close();
});

async function startHub(...args: string[]): Promise<Hub> {
  const hub = await Hub.start(...args);
  hubs.push(hub);
  return hub;
}

/** `count` sends at once from `sender` to `reader`, texts m0, m1, ...: the results and what arrived. */
async function burst(sender: Client, reader: Inbox, to: string, count: number): Promise<[Message[], Message[]]> {
  const events = new Inbox(sender);
  const session = sender.session;
  const texts = Array.from({ length: count }, (_, i) => `m${i}`);
  const [sent, got] = await Promise.all([
    Promise.all(texts.map((text) => sender.sendText(text, { to }))),
    reader.messages(count, 60_000),
  ]);
  // One connection throughout: nothing was closed (4008) or reconnected.
  assert.equal(sender.session, session);
  assert.equal(sender.connected, true);
  assert.deepEqual((await events.quiet(100)).filter((e) => e.type === "disconnected" || e.type === "reconnected"), []);
  return [sent, got];
}

const numbered = (messages: Message[]): [number, string | undefined][] => messages.map((m) => [m.seq, m.text]);
const expected = (count: number, first = 1): [number, string][] =>
  Array.from({ length: count }, (_, i) => [first + i, `m${i}`]);

test("a hundred sends at once go out at the hub's default rate, in order, without a 4008", async () => {
  const hub = await startHub();
  const alice = await clients.as(hub.url, "alice");
  const bob = await clients.as(hub.url, "bob");
  // 100 at 20/s (after a burst) take longer than the request timeout: waiting for
  // its turn must not count against a request.
  const [sent, got] = await burst(alice, new Inbox(bob), "bob", 100);
  assert.deepEqual(numbered(sent), expected(100));
  assert.deepEqual(numbered(got), expected(100));
});

test("a thousand sends at once are delivered once and in order", async () => {
  const hub = await startHub("--rate-send-per-s", "200");
  const alice = await clients.as(hub.url, "alice");
  const bob = await clients.as(hub.url, "bob");
  const [sent, got] = await burst(alice, new Inbox(bob), "bob", 1000);
  assert.deepEqual(numbered(sent), expected(1000));
  assert.deepEqual(numbered(got), expected(1000));
});

test("a refusal for the user's limit, spent by another device, is waited out and repeated", async () => {
  // A user's devices together get what one connection gets: alice's phone spends it.
  const hub = await startHub("--rate-user-scale", "1");
  const logs: string[] = [];
  const alice = await clients.as(hub.url, "alice", { logger: { debug: (message: string) => logs.push(message) } });
  const phone = await clients.as(hub.url, "alice", { device: "phone" });
  const bob = await clients.as(hub.url, "bob");
  const inbox = new Inbox(bob);
  await Promise.all(Array.from({ length: 40 }, (_, i) => phone.sendText(`p${i}`, { to: "bob" })));
  await inbox.messages(40);

  const [sent, got] = await burst(alice, inbox, "bob", 30);
  assert.ok(logs.some((line) => line.includes("send refused for rate")), "the hub refused, and the send was repeated");
  assert.deepEqual(numbered(sent), expected(30, 41));
  assert.deepEqual(numbered(got), expected(30, 41));
});

const CARD = { id: "v42", url: "https://videos.example/v/42" };

test("a share to more targets than the burst waits for a full bucket, then passes", async () => {
  const hub = await startHub(); // burst 40
  const logs: string[] = [];
  const alice = await clients.as(hub.url, "alice", { logger: { debug: (message: string) => logs.push(message) } });
  const events = new Inbox(alice);
  const session = alice.session;
  const targets = Array.from({ length: 60 }, (_, i) => `u${i}`);
  const [results, after] = await Promise.all([
    alice.shareVideo(CARD, { to: targets }),
    alice.sendText("after", { to: "bob" }),
  ]);
  assert.deepEqual(results.map((r) => [r.target, r.ok, r.error ?? null]), targets.map((t) => [t, true, null]));
  assert.equal(after.seq, 1); // it waited behind the share's debt, then went out
  // The hub set the share's cost aside and named its time; the same share then passed.
  assert.ok(logs.some((line) => line.includes("share refused for rate")), "the hub refused once, and the share was repeated");
  assert.equal(alice.session, session);
  assert.deepEqual((await events.quiet(100)).filter((e) => e.type === "disconnected" || e.type === "reconnected"), []);
});

test("a share costs what the hub counts: each target once", async () => {
  const hub = await startHub("--rate-send-per-s", "5"); // burst 10
  const logs: string[] = [];
  const alice = await clients.as(hub.url, "alice", { logger: { debug: (message: string) => logs.push(message) } });
  const users = Array.from({ length: 5 }, (_, i) => `u${i}`);
  const start = performance.now();
  // Each user three times: the hub drops the repeats and counts five, so four tokens
  // are left for the sends, which go out at once.
  const [results, ...sent] = await Promise.all([
    alice.shareVideo(CARD, { to: [...users, ...users, ...users] }),
    ...Array.from({ length: 4 }, (_, i) => alice.sendText("hi", { to: `v${i}` })),
  ]);
  assert.deepEqual(results.map((r) => [r.target, r.ok]), users.map((u) => [u, true]));
  assert.deepEqual(sent.map((m) => m.seq), [1, 1, 1, 1]);
  assert.ok(performance.now() - start < 600, "counted as fifteen, the sends would wait 1.4 s or more");
  assert.ok(!logs.some((line) => line.includes("refused for rate")));
});
