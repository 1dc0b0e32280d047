/**
 * Reconnect, resume and exactly-once delivery against a real hub process: a
 * killed and restarted hub, holes filled from history after a resume gap, a send
 * repeated with its cmid after its answer was lost, and silent connections.
 */

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { ConnectionLost, RequestTimeout } from "clipwire-client";

import { Clients, Hub, Inbox, Proxy, sleep, spyingWebSocket, texts } from "./helpers.js";

const clients = new Clients();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await clients.closeAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startHub(...args: string[]): Promise<Hub> {
  const hub = await Hub.start(...args);
  cleanups.push(() => hub.close());
  return hub;
}

async function startProxy(port: number): Promise<Proxy> {
  const proxy = await new Proxy(port).start();
  cleanups.push(() => proxy.close());
  return proxy;
}

test("after the hub process is killed and restarted, resume delivers each message exactly once", async () => {
  const hub = await startHub();
  // Alice reaches the hub through a relay, so that she stays away until we let her back.
  const proxy = await startProxy(hub.port);
  const alice = await clients.as(proxy.url, "alice");
  const bob = await clients.as(hub.url, "bob");
  const aliceInbox = new Inbox(alice);
  const bobInbox = new Inbox(bob);
  const dm = (await alice.sendText("before the crash", { to: "bob" })).conv;
  assert.deepEqual(texts(await bobInbox.messages(1)), ["before the crash"]);

  proxy.refuse = true;
  await hub.kill();
  for (const inbox of [aliceInbox, bobInbox]) {
    const lost = await inbox.next("disconnected");
    assert.deepEqual([lost.code, lost.reconnecting], [1006, true]);
  }
  await hub.restart();

  await bobInbox.next("reconnected", 10_000);
  await bob.sendText("while you were away", { conv: dm });
  await bob.sendText("and one more", { to: "alice" });
  assert.equal(alice.connected, false);
  proxy.refuse = false;

  await aliceInbox.next("reconnected", 10_000);
  const got = await aliceInbox.messages(2);
  assert.deepEqual(got.map((m) => [m.seq, m.text, m.sender]), [
    [2, "while you were away", "bob"], [3, "and one more", "bob"],
  ]);
  assert.deepEqual((await aliceInbox.quiet(500)).filter((e) => e.type === "message"), []);
  assert.equal(alice.duplicatesDropped >= 0, true);

  const back = await alice.sendText("back again", { to: "bob" });
  assert.equal(back.seq, 4);
  assert.deepEqual(texts(await bobInbox.messages(1)), ["back again"]);
  assert.deepEqual((await bob.history(dm)).map((m) => m.seq), [1, 2, 3, 4]);
  assert.deepEqual(alice.resumeState, { [dm]: 4 });
});

test("a resume gap (resume_cap 3) is filled from history, in order, exactly once", async () => {
  const hub = await startHub("--resume-cap", "3");
  const proxy = await startProxy(hub.port);
  const sent: Record<string, unknown>[] = [];
  const bob = await clients.as(proxy.url, "bob", { WebSocketImpl: spyingWebSocket(sent) });
  const alice = await clients.as(hub.url, "alice");
  const bobInbox = new Inbox(bob);
  const dm = (await alice.sendText("m1", { to: "bob" })).conv;
  const group = await alice.createGroup(["bob"], "Film club");
  await alice.sendText("g1", { conv: group });
  assert.deepEqual(texts(await bobInbox.messages(2)), ["m1", "g1"]);

  proxy.refuse = true;
  proxy.cut();
  await bobInbox.next("disconnected");
  for (let i = 2; i <= 12; i++) await alice.sendText(`m${i}`, { conv: dm });
  for (let i = 2; i <= 6; i++) await alice.sendText(`g${i}`, { conv: group });
  proxy.refuse = false;

  await bobInbox.next("reconnected", 10_000);
  const got = await bobInbox.messages(16, 10_000);
  const byConv = (conv: string): [number, string | undefined][] =>
    got.filter((m) => m.conv === conv).map((m) => [m.seq, m.text]);
  assert.deepEqual(byConv(dm), Array.from({ length: 11 }, (_, i) => [i + 2, `m${i + 2}`]));
  assert.deepEqual(byConv(group), Array.from({ length: 5 }, (_, i) => [i + 2, `g${i + 2}`]));
  assert.deepEqual((await bobInbox.quiet(500)).filter((e) => e.type === "message"), []);
  assert.deepEqual(bob.resumeState, { [dm]: 12, [group]: 6 });
  // The hello resumed from the contiguous marks; the backlog stopped at 3 per
  // conversation, and the rest came from history pages below the gap's end.
  const hellos = sent.filter((f) => f["t"] === "hello");
  assert.deepEqual(hellos.map((h) => h["resume"]), [undefined, { [dm]: 1, [group]: 1 }]);
  const fills = sent.filter((f) => f["t"] === "history").map((f) => [f["conv"], f["before"], f["limit"]]);
  assert.deepEqual(fills.sort(), [[dm, 13, 8], [group, 7, 2]].sort());
  assert.equal(bob.conversations.get(dm)?.lastSeq, 12);
});

test("a send whose answer was lost is repeated with the same cmid and stored once", async () => {
  const hub = await startHub();
  const proxy = await startProxy(hub.port);
  const wire: Record<string, unknown>[] = [];
  const alice = await clients.as(proxy.url, "alice", { WebSocketImpl: spyingWebSocket(wire) });
  const bob = await clients.as(hub.url, "bob");
  const aliceInbox = new Inbox(alice);
  const bobInbox = new Inbox(bob);
  await alice.sendText("first", { to: "bob" });
  await bobInbox.messages(1);

  proxy.blackhole = true; // the hub stores the message, but its ok never reaches alice
  let settled = false;
  const sending = alice.sendText("exactly once", { to: "bob", cmid: "retry-me" });
  void sending.finally(() => {
    settled = true;
  });
  const [stored] = await bobInbox.messages(1);
  await sleep(100);
  assert.equal(settled, false);
  proxy.blackhole = false;
  proxy.cut();

  const sent = await sending; // answered once, after the reconnect
  assert.deepEqual([sent.conv, sent.seq, sent.ts, sent.cmid], [stored!.conv, stored!.seq, stored!.ts, "retry-me"]);
  assert.deepEqual(texts(await bob.history(sent.conv)), ["first", "exactly once"]);
  assert.deepEqual((await bobInbox.quiet(300)).filter((e) => e.type === "message"), []);
  // The resume backlog brought alice her own message: not an event, she got the result.
  assert.deepEqual((await aliceInbox.quiet(300)).filter((e) => e.type === "message"), []);
  assert.equal(alice.resumeState[sent.conv], 2);
  // The same frame, cmid and all, went out on both connections.
  const sends = wire.filter((f) => f["t"] === "send" && f["cmid"] === "retry-me");
  assert.equal(sends.length, 2);
  assert.deepEqual(sends[0], sends[1]);
});

test("an unrepeatable request in flight fails with ConnectionLost; requests wait for the connection", async () => {
  const hub = await startHub();
  const proxy = await startProxy(hub.port);
  const alice = await clients.as(proxy.url, "alice");
  const inbox = new Inbox(alice);
  proxy.blackhole = true;
  const creating = alice.createGroup(["bob"], "Maybe");
  await sleep(200);
  proxy.blackhole = false;
  proxy.refuse = true;
  proxy.cut();
  await assert.rejects(creating, (error: unknown) => {
    assert.ok(error instanceof ConnectionLost, String(error));
    assert.deepEqual([error.t, error.code], ["group.create", 1006]);
    return true;
  });
  await inbox.next("disconnected");
  assert.equal(alice.connected, false);
  await assert.rejects(alice.ping({ timeoutMs: 200 }), RequestTimeout);
  let done = false;
  const waiting = alice.sendText("queued while offline", { to: "bob" }).finally(() => {
    done = true;
  });
  await sleep(200);
  assert.equal(done, false);
  proxy.refuse = false;
  const sent = await waiting;
  assert.equal(sent.seq, 1);
  assert.equal(alice.connected, true);
});

test("a hub shutdown (1001 or 4010) and a restart on the same port, and a silent connection, are survived", async () => {
  const hub = await startHub();
  const alice = await clients.as(hub.url, "alice");
  const inbox = new Inbox(alice);
  await hub.stop();
  const lost = await inbox.next("disconnected");
  // SPEC.md section 5 says 1001; this hub's SIGTERM path drains with 4010. Both reconnect.
  assert.ok(lost.code === 1001 || lost.code === 4010, String(lost.code));
  assert.equal(lost.reconnecting, true);
  await hub.restart();
  await inbox.next("reconnected", 10_000);
  assert.ok((await alice.ping()) > 0);

  // A connection that goes silent (no close, no answers) is detected by the keepalive.
  const proxy = await startProxy(hub.port);
  const carol = await clients.as(proxy.url, "carol", { keepaliveIntervalMs: 200, keepaliveTimeoutMs: 300 });
  const carolInbox = new Inbox(carol);
  proxy.blackhole = true;
  const silent = await carolInbox.next("disconnected", 3000);
  assert.deepEqual([silent.code, silent.reason, silent.reconnecting], [1006, "keepalive timed out", true]);
  proxy.blackhole = false;
  await carolInbox.next("reconnected", 5000);
  assert.ok((await carol.ping()) > 0);
});

test("resumeState carries over to a new client", async () => {
  const hub = await startHub();
  const alice = await clients.as(hub.url, "alice");
  const bob = await clients.as(hub.url, "bob");
  const bobInbox = new Inbox(bob);
  const dm = (await alice.sendText("m1", { to: "bob" })).conv;
  await bobInbox.messages(1);
  await bob.close();
  const saved = bob.resumeState; // still readable once closed
  assert.deepEqual(saved, { [dm]: 1 });
  for (let i = 2; i <= 4; i++) await alice.sendText(`m${i}`, { conv: dm });
  const again = await clients.as(hub.url, "bob", { resume: saved });
  const inbox = new Inbox(again);
  assert.deepEqual(texts(await inbox.messages(3)), ["m2", "m3", "m4"]);
  assert.deepEqual((await inbox.quiet(300)).filter((e) => e.type === "message"), []);
});

test("filling goes on below a history page the hub cut short by size", async () => {
  // 40 messages of 16 kB: a page of them is far over half the hub's 150 kB send
  // buffer, so the hub cuts each page to fit; the client pages on below what came.
  const hub = await startHub("--resume-cap", "3", "--send-buffer-bytes", "150000");
  const proxy = await startProxy(hub.port);
  const sent: Record<string, unknown>[] = [];
  const bob = await clients.as(proxy.url, "bob", { WebSocketImpl: spyingWebSocket(sent) });
  const alice = await clients.as(hub.url, "alice");
  const inbox = new Inbox(bob);
  const dm = (await alice.sendText("hello", { to: "bob" })).conv;
  await inbox.messages(1);
  proxy.refuse = true;
  proxy.cut();
  await inbox.next("disconnected");
  const long = (n: number): string => `${String(n).padStart(3, "0")}${"\u{1F600}".repeat(3990)}`;
  for (let n = 2; n <= 41; n++) await alice.sendText(long(n), { conv: dm });
  proxy.refuse = false;

  const got = await inbox.messages(40, 15_000);
  assert.deepEqual(got.map((m) => [m.seq, m.text?.slice(0, 3)]), Array.from({ length: 40 }, (_, i) => [i + 2, String(i + 2).padStart(3, "0")]));
  assert.deepEqual((await inbox.quiet(300)).filter((e) => e.type === "message"), []);
  assert.equal(proxy.accepted, 2); // no 4009 on the way
  // Some page came back shorter than asked, and the next one asked below it.
  const pages = sent.filter((f) => f["t"] === "history").map((f) => [f["before"], f["limit"]] as [number, number]);
  assert.ok(pages.some(([before, limit], i) => i > 0 && before < pages[i - 1]![0] && before - limit === pages[i - 1]![0] - pages[i - 1]![1]),
    JSON.stringify(pages));
});
