/**
 * Tokens: expiry (close 4001) with and without a token provider, refresh by hand
 * and ahead of expiry through the provider.
 */

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { ClientClosed, Unauthorized, tokenExpiry } from "clipwire-client";

import { Clients, Hub, Inbox, spyingWebSocket, token } from "./helpers.js";

let hub: Hub;
const clients = new Clients();
before(async () => {
  hub = await Hub.start();
});
afterEach(() => clients.closeAll());
after(() => hub.close());

test("an expired session (4001) reconnects with the provider's token; without one it ends", async () => {
  let provided = 0;
  const alice = await clients.as(hub.url, "alice", {
    token: token("alice", 1),
    tokenProvider: () => {
      provided++;
      return token("alice", 3600);
    },
    refreshBeforeExpiryMs: null,
  });
  const bob = await clients.as(hub.url, "bob", { token: token("bob", 1) });
  const aliceInbox = new Inbox(alice);
  const bobInbox = new Inbox(bob);

  // The hub closes at exp + 5 s of leeway.
  const lost = await aliceInbox.next("disconnected", 10_000);
  assert.deepEqual([lost.code, lost.reconnecting], [4001, true]);
  await aliceInbox.next("reconnected", 5000);
  assert.equal(provided, 1);
  assert.ok((await alice.ping()) > 0);

  const ended = await bobInbox.next("disconnected", 5000);
  assert.deepEqual([ended.code, ended.reconnecting], [4001, false]);
  assert.equal(bob.closed, true);
  await assert.rejects(bobInbox.poll(1000), (error: unknown) => error instanceof ClientClosed && error.code === 4001);
  await assert.rejects(bob.ping(), ClientClosed);
});

test("the provider refreshes the session ahead of the token's expiry", async () => {
  const sent: Record<string, unknown>[] = [];
  const first = token("carol", 62); // refresh 60 s before exp: in about 2 s
  const second = token("carol", 7200);
  const carol = await clients.as(hub.url, "carol", {
    token: first, tokenProvider: () => second, WebSocketImpl: spyingWebSocket(sent),
  });
  const inbox = new Inbox(carol);
  const deadline = Date.now() + 6000;
  while (!sent.some((f) => f["t"] === "refresh") && Date.now() < deadline) await inbox.quiet(100);
  const refresh = sent.find((f) => f["t"] === "refresh");
  assert.ok(refresh, "no refresh request was sent");
  assert.equal(refresh["token"], second);
  assert.deepEqual((await inbox.quiet(300)).filter((e) => e.type === "disconnected"), []);
  assert.ok((await carol.ping()) > 0);
});

test("refresh by hand: a token for another user is refused and the session stays", async () => {
  const dave = await clients.as(hub.url, "dave");
  const fresh = token("dave", 7200);
  const expires = await dave.refresh(fresh);
  assert.ok(Math.abs(expires - (tokenExpiry(fresh)! * 1000 + 5000)) < 1000, String(expires));
  await assert.rejects(dave.refresh(token("erin")), (error: unknown) => error instanceof Unauthorized && !error.local);
  assert.equal(dave.connected, true);
  assert.ok((await dave.ping()) > 0);
});
