/**
 * The client against a real hub: hello and welcome, DMs, shares, history paging,
 * groups and the social requests, typed errors (from the hub and refused locally).
 */

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import {
  BadRequest,
  ClientClosed,
  ConnectFailed,
  Forbidden,
  NotFound,
  RequestFailed,
  TooLarge,
  Unauthorized,
  type VideoCard,
  connect,
  newCmid,
} from "clipwire-client";

import { Clients, FAST, Hub, Inbox, texts, token } from "./helpers.js";

let hub: Hub;
const clients = new Clients();
let n = 0;
/** A fresh user name per test, so that tests on the shared hub do not meet. */
const fresh = (name: string): string => `${name}-${++n}-${Date.now() % 100000}`;

before(async () => {
  hub = await Hub.start();
});
afterEach(() => clients.closeAll());
after(() => hub.close());

const CARD: VideoCard = {
  id: "v42", url: "https://cdn.example/v42.mp4", thumb: "https://cdn.example/v42.jpg", caption: "Sunset ride",
  author: "dave", durationMs: 61000, atMs: 12000,
};

test("hello: the welcome fills user, session, limits and conversations", async () => {
  const alice = fresh("alice");
  const client = await clients.as(hub.url, alice, { device: "phone 7f3a" });
  assert.equal(client.user, alice);
  assert.match(client.session, /^s\d+/);
  assert.equal(client.subprotocol, "clipwire.v1");
  assert.equal(client.connected, true);
  assert.ok(Math.abs(client.serverTime - Date.now()) < 60_000);
  assert.equal(client.limits.max_frame_bytes, 65536);
  // SPEC.md says 16000 (max(4 x max_text_chars, 1024)); server/config.py announces
  // max(4 x max_text_chars, 16384). The client takes whatever the welcome says.
  assert.equal(client.limits.max_str_len, (client.welcome["limits"] as Record<string, number>)["max_str_len"]);
  assert.ok(client.limits.max_str_len >= 16000);
  assert.equal((client.welcome["limits"] as Record<string, number>)["resume_cap"], 200);
  assert.equal(client.conversations.size, 0);
  assert.deepEqual(client.friendRequests, []);
  assert.ok((await client.ping()) > 0);
});

test("a DM is delivered to the other user, typed, with a conversation event first", async () => {
  const [a, b] = [fresh("alice"), fresh("bob")];
  const alice = await clients.as(hub.url, a);
  const bob = await clients.as(hub.url, b);
  const inbox = new Inbox(bob);
  const sent = await alice.sendText("hi bob", { to: b });
  assert.equal(sent.type, "message");
  assert.match(sent.conv, /^dm:[0-9a-f]{24}$/);
  assert.deepEqual([sent.seq, sent.sender, sent.text, sent.kind], [1, a, "hi bob", "text"]);
  assert.ok(sent.ts > 0);

  const conv = await inbox.next("conversation");
  assert.deepEqual([conv.conv, conv.conversation.kind, conv.conversation.peer, conv.removed], [sent.conv, "dm", a, false]);
  const [msg] = await inbox.messages(1);
  assert.deepEqual(
    [msg!.conv, msg!.seq, msg!.sender, msg!.text, msg!.cmid, msg!.ts],
    [sent.conv, 1, a, "hi bob", sent.cmid, sent.ts],
  );
  assert.equal(bob.conversations.get(sent.conv)?.name, a);
  assert.equal(alice.conversations.get(sent.conv)?.lastSeq, 1);

  // A reply, a reaction and a read receipt travel as typed events.
  const answer = await bob.replyTo(sent.conv, 1, "hello alice");
  const aliceInbox = new Inbox(alice);
  const [reply] = await aliceInbox.messages(1);
  assert.deepEqual(reply!.reply, { seq: 1 });
  assert.equal(reply!.seq, answer.seq);
  await bob.react(sent.conv, 1, "🔥");
  const reaction = await aliceInbox.next("reaction");
  assert.deepEqual([reaction.user, reaction.emoji, reaction.on, reaction.seq], [b, "🔥", true, 1]);
  assert.equal(await bob.read(sent.conv, 2), 2);
  const receipt = await aliceInbox.next("read");
  assert.deepEqual([receipt.user, receipt.seq], [b, 2]);
  assert.equal(bob.conversations.get(sent.conv)?.readSeq, 2);
});

test("a video shared to many users and a group arrives once in each conversation", async () => {
  const [a, b, c, d] = [fresh("alice"), fresh("bob"), fresh("carol"), fresh("dave")];
  const alice = await clients.as(hub.url, a);
  const bob = await clients.as(hub.url, b);
  const carol = await clients.as(hub.url, c);
  const group = await alice.createGroup([b, d], "Film club");
  assert.equal(alice.conversations.get(group)?.title, "Film club");
  const bobInbox = new Inbox(bob);
  const carolInbox = new Inbox(carol);

  const results = await alice.shareVideo(CARD, { to: [b, c, b], convs: [group], text: "watch the jump" });
  assert.deepEqual(results.map((r) => [r.targetKind, r.target, r.ok, r.seq]), [
    ["to", b, true, 1], ["to", c, true, 1], ["conv", group, true, 1],
  ]);
  const bobGot = await bobInbox.messages(2);
  assert.deepEqual(new Set(bobGot.map((m) => m.conv)), new Set([results[0]!.conv, group]));
  for (const msg of bobGot) {
    assert.equal(msg.kind, "video");
    assert.deepEqual(msg.video, CARD);
    assert.equal(msg.text, "watch the jump");
  }
  const [carolGot] = await carolInbox.messages(1);
  assert.deepEqual([carolGot!.conv, carolGot!.video?.id], [results[1]!.conv, "v42"]);
  assert.equal((await bobInbox.quiet(200)).filter((e) => e.type === "message").length, 0);

  // A share that reaches nobody is still an ok, with an error per target.
  const refused = await alice.shareVideo(CARD, { convs: ["g:not-a-group"] });
  assert.deepEqual(refused.map((r) => [r.ok, r.error]), [[false, "forbidden"]]);
  // A moment reply and a pinned reaction on the shared video.
  await bob.replyTo(group, 1, "that jump!", { atMs: 42000 });
  await bob.react(group, 1, "🔥", { atMs: 42000 });
  const page = await alice.history(group);
  assert.deepEqual(page.map((m) => [m.seq, m.reply?.atMs]), [[1, undefined], [2, 42000]]);
  assert.deepEqual(page[0]!.reactions, [{ emoji: "🔥", count: 1, me: false, moments: [42000] }]);
});

test("history pages backwards with before and limit, oldest first", async () => {
  const [a, b] = [fresh("alice"), fresh("bob")];
  const alice = await clients.as(hub.url, a);
  const first = await alice.sendText("m1", { to: b });
  for (let i = 2; i <= 25; i++) await alice.sendText(`m${i}`, { conv: first.conv });
  const newest = await alice.history(first.conv, { limit: 10 });
  assert.deepEqual(newest.map((m) => m.seq), [16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
  const all = [...newest];
  let beforeSeq = newest[0]!.seq;
  while (beforeSeq > 1) {
    const page = await alice.history(first.conv, { before: beforeSeq, limit: 10 });
    assert.ok(page.length > 0 && page.length <= 10);
    all.unshift(...page);
    beforeSeq = page[0]!.seq;
  }
  assert.deepEqual(all.map((m) => m.seq), Array.from({ length: 25 }, (_, i) => i + 1));
  assert.deepEqual(texts(all), Array.from({ length: 25 }, (_, i) => `m${i + 1}`));
  assert.deepEqual(await alice.history(first.conv, { before: 1 }), []);
});

test("errors are typed: the hub's answers and the client's own refusals", async () => {
  const [a, b] = [fresh("alice"), fresh("bob")];
  const alice = await clients.as(hub.url, a);
  const dm = (await alice.sendText("hi", { to: b })).conv;

  await assert.rejects(alice.history("g:someone-elses"), (error: unknown) => {
    assert.ok(error instanceof Forbidden && error instanceof RequestFailed);
    assert.deepEqual([error.code, error.t, error.local], ["forbidden", "history", false]);
    assert.equal(error.reason, "no such conversation, or you are not a member");
    return true;
  });
  await assert.rejects(alice.react(dm, 99, "🔥"), (error: unknown) => error instanceof NotFound && error.code === "not_found");
  await assert.rejects(alice.read(dm, 99), (error: unknown) => error instanceof BadRequest && !error.local);

  // Refused before sending, with the field the hub would name.
  const local = async (promise: Promise<unknown>, field: string | null): Promise<void> => {
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof BadRequest, String(error));
      assert.equal(error.local, true);
      assert.equal(error.field, field);
      return true;
    });
  };
  await local(alice.sendText("", { to: b }), "text");
  await local(alice.sendText("x".repeat(4001), { to: b }), "text");
  await local(alice.sendText("hi", { to: "bo\nb" }), "to");
  await local(alice.sendText("hi", {} as { to: string }), "to");
  await local(alice.sendVideo({ id: "v1", url: "ftp://x/v.mp4" }, { to: b }), "video.url");
  await local(alice.shareVideo(CARD, {}), "to");
  await local(alice.history(dm, { limit: 101 }), "limit");
  await local(alice.react(dm, 1, " "), "emoji");
  await local(alice.react(dm, 1.5, "🔥"), "seq");
  await local(alice.sendText("\ud800 lone surrogate", { conv: dm }), "text");
  assert.throws(() => alice.typing(""), (error: unknown) => error instanceof BadRequest && error.field === "conv");
  const big = alice.createGroup(Array.from({ length: 1000 }, (_, i) => `member-with-a-long-name-${i}-${"x".repeat(60)}`));
  await assert.rejects(big, (error: unknown) => error instanceof TooLarge && error.local);

  // Nothing of that reached the hub: the connection is fine and nothing was stored.
  assert.equal(alice.connected, true);
  assert.deepEqual((await alice.history(dm)).map((m) => m.seq), [1]);

  await assert.rejects(connect(hub.url, { ...FAST, token: "not-a-jwt" }), (error: unknown) => error instanceof Unauthorized);
  await assert.rejects(connect(hub.url, { ...FAST, token: token(a, 3600, "wrong-secret-wrong-secret-wrong-secret") }),
    Unauthorized);
  await assert.rejects(connect("ws://127.0.0.1:1/ws", { ...FAST, token: token(a) }), ConnectFailed);
  await alice.close();
  await assert.rejects(alice.ping(), (error: unknown) => error instanceof ClientClosed && error.code === 1000);
});

test("listeners and iterators both see every event, in order", async () => {
  const [a, b] = [fresh("alice"), fresh("bob")];
  const alice = await clients.as(hub.url, a);
  const bob = await clients.as(hub.url, b);
  const heard: string[] = [];
  const off = bob.on("message", (m) => {
    heard.push(`${m.seq}:${m.text}`);
  });
  const all: string[] = [];
  bob.on("*", (e) => {
    all.push(e.type);
  });
  const inbox = new Inbox(bob);
  const first = await alice.sendText("one", { to: b });
  await alice.sendText("two", { conv: first.conv });
  assert.deepEqual(texts(await inbox.messages(2)), ["one", "two"]);
  assert.deepEqual(heard, ["1:one", "2:two"]);
  assert.deepEqual(all, ["conversation", "message", "message"]);
  off();
  await alice.sendText("three", { conv: first.conv });
  await inbox.messages(1);
  assert.deepEqual(heard, ["1:one", "2:two"]);

  // Iteration ends when the client is closed.
  const it = bob.events();
  await bob.close();
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

test("friends, presence, typing, watch, unsend and groups", async () => {
  const [a, b, c] = [fresh("alice"), fresh("bob"), fresh("carol")];
  const alice = await clients.as(hub.url, a);
  const bob = await clients.as(hub.url, b);
  const bobInbox = new Inbox(bob);
  const aliceInbox = new Inbox(alice);

  await alice.friendRequest(b);
  const asked = await bobInbox.next("friend");
  assert.deepEqual([asked.user, asked.state, asked.direction, asked.was], [a, "requested", "in", null]);
  assert.deepEqual(bob.friendRequests, [{ user: a, direction: "in" }]);
  const echoed = await aliceInbox.next("friend"); // the requester's own devices hear it too
  assert.deepEqual([echoed.user, echoed.state, echoed.direction], [b, "requested", "out"]);
  await bob.acceptFriend(a);
  const accepted = await aliceInbox.next("friend");
  assert.deepEqual([accepted.state, accepted.was], ["accepted", "out"]);
  assert.equal((await aliceInbox.next("presence")).online, true);
  assert.equal(alice.friends.get(b)?.online, true);
  const states = await alice.presence([b, c]);
  assert.deepEqual(states.map((p) => [p.user, p.online]), [[b, true], [c, false]]);

  const group = await alice.createGroup([b], "Plans");
  const joined = await bobInbox.next("conversation");
  assert.deepEqual([joined.conv, joined.conversation.owner, joined.conversation.members], [group, a, [a, b]]);
  alice.typing(group);
  const typing = await bobInbox.next("typing");
  assert.deepEqual([typing.conv, typing.user], [group, a]);
  const state = await alice.watch(group, "v42", 40000, true);
  const watch = await bobInbox.next("watch");
  assert.deepEqual([watch.videoId, watch.posMs, watch.playing, watch.by, watch.ts], ["v42", 40000, true, a, state.ts]);
  assert.equal(bob.conversations.get(group)?.watch?.posMs, 40000);

  const oops = await alice.sendText("oops", { conv: group });
  await bobInbox.messages(1);
  await alice.unsend(group, oops.seq);
  const unsent = await bobInbox.next("unsent");
  assert.deepEqual([unsent.conv, unsent.seq], [group, oops.seq]);
  const [tomb] = await bob.history(group);
  assert.deepEqual([tomb!.unsent, tomb!.text], [true, undefined]);

  await alice.addMembers(group, [c]);
  const added = await bobInbox.next("conversation");
  assert.deepEqual(added.conversation.members, [a, b, c]);
  await bob.leaveGroup(group);
  const left = await bobInbox.next("conversation");
  assert.deepEqual([left.conv, left.removed], [group, true]);
  assert.equal(bob.conversations.has(group), false);
  await assert.rejects(bob.history(group), Forbidden);
  await alice.block(b);
  await assert.rejects(bob.sendText("hey", { to: a }), Forbidden);
  await alice.unblock(b);
  await alice.removeFriend(b);
  assert.equal(alice.friends.has(b), false);
  assert.ok(newCmid().match(/^[0-9a-f]{32}$/));
});

test("a slow reader keeps memory bounded and loses nothing", async () => {
  const [a, b] = [fresh("alice"), fresh("bob")];
  const alice = await clients.as(hub.url, a);
  const bob = await clients.as(hub.url, b, { maxQueuedEvents: 5, maxBufferedMessages: 5 });
  const first = await alice.sendText("m1", { to: b });
  for (let i = 2; i <= 40; i++) await alice.sendText(`m${i}`, { conv: first.conv });
  await new Promise((resolve) => setTimeout(resolve, 300)); // bob reads nothing meanwhile
  const inbox = new Inbox(bob);
  const got = await inbox.messages(40, 10_000);
  assert.deepEqual(texts(got), Array.from({ length: 40 }, (_, i) => `m${i + 1}`));
  assert.deepEqual((await inbox.quiet(300)).filter((e) => e.type === "message"), []);
  assert.ok(bob.droppedEvents <= 1, String(bob.droppedEvents)); // at most the conversation event
});
