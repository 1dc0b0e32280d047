/**
 * Friends and pending friend requests, as the client knows them (the Python
 * SDK's `friends.py`). The welcome fills them; `friend` and `presence` events keep
 * them current. After a reconnect, what a new welcome shows to have changed
 * meanwhile is returned as the events that would have said so.
 */

import { type FriendEvent, type FriendRequest, type Presence, isMap, presenceFromWire } from "./models.js";

export class Friends {
  friends = new Map<string, Presence>();
  requests: FriendRequest[] = [];

  /** `"friends"`, `"in"` or `"out"` (a pending request), or null. */
  relation(user: string): string | null {
    if (this.friends.has(user)) return "friends";
    return this.requests.find((r) => r.user === user)?.direction ?? null;
  }

  /** Take `requests` and `friends` from a welcome; return the changes as events. */
  load(welcome: Record<string, unknown>): (FriendEvent | Presence)[] {
    const before = this.relations();
    const oldFriends = this.friends;
    const requests = welcome["requests"];
    const friends = welcome["friends"];
    this.requests = (Array.isArray(requests) ? requests : [])
      .filter((r): r is Record<string, unknown> => isMap(r) && typeof r["user"] === "string")
      .map((r) => ({ user: r["user"] as string, direction: String(r["direction"] ?? "in") }));
    this.friends = new Map();
    for (const f of Array.isArray(friends) ? friends : []) {
      if (isMap(f) && typeof f["user"] === "string") this.friends.set(f["user"], presenceFromWire(f));
    }
    const after = this.relations();
    const changes: (FriendEvent | Presence)[] = [];
    for (const user of new Set([...before.keys(), ...after.keys()])) {
      const was = before.get(user) ?? null;
      const now = after.get(user) ?? null;
      if (was === now) continue;
      if (now === "friends") changes.push({ type: "friend", user, state: "accepted", was });
      else if (now !== null) changes.push({ type: "friend", user, state: "requested", direction: now, was });
      else changes.push({ type: "friend", user, state: "removed", was });
    }
    for (const [user, state] of this.friends) {
      const old = oldFriends.get(user);
      if (state.online !== (old !== undefined && old.online)) changes.push(state);
    }
    return changes;
  }

  /** Follow one hub event; a FriendEvent comes back with `was` filled in. */
  apply<E extends FriendEvent | Presence>(event: E): E {
    if (event.type === "presence") {
      if (this.friends.has(event.user)) this.friends.set(event.user, event);
      return event;
    }
    const user = event.user;
    const was = this.relation(user);
    this.requests = this.requests.filter((r) => r.user !== user);
    if (event.state === "requested") {
      this.friends.delete(user);
      this.requests.push({ user, direction: event.direction ?? "in" });
    } else if (event.state === "accepted") {
      if (!this.friends.has(user)) this.friends.set(user, { type: "presence", user, online: false, lastSeen: null });
    } else {
      this.friends.delete(user);
    }
    return { ...event, was };
  }

  /** Presence answers: update the friends among them. */
  seen(states: Presence[]): void {
    for (const state of states) if (this.friends.has(state.user)) this.friends.set(state.user, state);
  }

  private relations(): Map<string, string | null> {
    const out = new Map<string, string | null>();
    for (const user of [...this.friends.keys(), ...this.requests.map((r) => r.user)]) out.set(user, this.relation(user));
    return out;
  }
}
