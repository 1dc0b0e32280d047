/**
 * Pacing: the client's side of the hub's rate limits, so that bursts never provoke
 * 4008. The same design as the Python SDK's `clients/python/pacing.py`.
 *
 * The hub refuses a `send` or `share` (one per target), `history` or
 * `friend.request` over its rate with `rate_limited` and a `retry_after_ms`, and
 * closes a connection that keeps going past its limits with 4008. Requests of these
 * kinds wait here and go out in call order at the rate the welcome announced
 * (`rate_<kind>_per_s`, `rate_<kind>_burst`):
 *
 * - One token bucket per kind, full after each welcome, keeping a reserve of a
 *   tenth of the burst (at least one) unused: a hub that reads a few requests late,
 *   and then all at once, still finds tokens for them.
 * - A refusal (another device of the same user may have spent the user's share)
 *   puts the request back at its place and holds its kind for `retry_after_ms`; the
 *   same frame (the same `cmid`) then goes out again, and the application sees no error.
 * - Order: requests to the same conversation are never on the wire together. If the
 *   first were refused and the second accepted, the second would get the lower seq.
 * - A hub that announces no rates is paced by its refusals alone.
 *
 * Time spent waiting here does not count against a request's timeout.
 */

/** Request type -> the hub's rate-limit kind it spends. */
export const KIND_OF: Readonly<Record<string, string>> = {
  send: "send", share: "send", history: "history", "friend.request": "friend",
};
const KINDS = ["send", "history", "friend"] as const;
/** How long to hold a kind after a `rate_limited` without `retry_after_ms`. */
const DEFAULT_RETRY_MS = 1000;
const MAX_TIMER = 2 ** 31 - 1;

/** The client's copy of one of its connection's buckets on the hub (times in ms). */
export class TokenBucket {
  burst: number | null = null;
  private ratePerMs: number | null = null; // null: not announced; only refusals pace
  private cap = 0;
  private tokens = 0;
  private stamp = 0;
  private heldUntil = 0;

  /** A new connection: its buckets on the hub start full, so does this one. */
  reset(ratePerS: unknown, burst: unknown, now: number): void {
    if (typeof ratePerS !== "number" || typeof burst !== "number" || !(ratePerS > 0) || !(burst > 0)) {
      this.ratePerMs = this.burst = null;
      return;
    }
    this.ratePerMs = ratePerS / 1000;
    this.burst = burst;
    this.cap = Math.max(1, burst - Math.max(1, burst / 10));
    this.tokens = this.cap;
    this.stamp = now;
  }

  /** Milliseconds until `cost` can be spent (0: now). */
  waitMs(cost: number, now: number): number {
    const held = Math.max(0, this.heldUntil - now);
    if (this.ratePerMs === null) return held;
    this.refill(now);
    // A cost over the cap goes out from a full bucket: the reserve covers it.
    return Math.max(held, (Math.min(cost, this.cap) - this.tokens) / this.ratePerMs);
  }

  take(cost: number, now: number): void {
    if (this.ratePerMs === null) return;
    this.refill(now);
    this.tokens -= cost;
  }

  /** The hub refused: spend nothing before `until`, and start again from empty. */
  hold(until: number, now: number): void {
    this.heldUntil = Math.max(this.heldUntil, until);
    if (this.ratePerMs === null) return;
    this.refill(now);
    this.tokens = Math.min(this.tokens, 0);
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.cap, this.tokens + (now - this.stamp) * this.ratePerMs!);
    this.stamp = now;
  }
}

/** What the pacer needs to know of a request. */
export interface Paced {
  readonly id: number;
  readonly kind: string;
  readonly cost: number;
  readonly keys: readonly string[];
  readonly done: boolean;
}

/** A FIFO of paced requests, handed to `release` while online. */
export class Pacer<C extends Paced> {
  private readonly buckets = new Map<string, TokenBucket>(KINDS.map((k) => [k, new TokenBucket()]));
  private readonly queue = new Map<number, C>(); // released in id order: call order
  private readonly onWire = new Map<number, C>();
  private readonly busy = new Set<string>(); // conversations with a request on the wire
  private isOnline = false;
  private scanPending = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly release: (call: C) => void, readonly maxQueued: number) {}

  /** The announced burst of `kind` (null: not announced). */
  burst(kind: string): number | null {
    return this.buckets.get(kind)?.burst ?? null;
  }

  get full(): boolean {
    return this.queue.size >= this.maxQueued;
  }

  /** A welcome: buckets full at the announced rates, then release what waits. */
  online(limits: Readonly<Record<string, unknown>>): void {
    const now = Date.now();
    for (const [kind, bucket] of this.buckets) bucket.reset(limits[`rate_${kind}_per_s`], limits[`rate_${kind}_burst`], now);
    this.isOnline = true;
    this.kick();
  }

  /** The connection dropped: what was on the wire waits here for the next one. */
  offline(): void {
    this.isOnline = false;
    for (const call of [...this.onWire.values()]) this.enqueue(call);
  }

  /** Queue `call` at its place in call order (again, after a drop or a refusal). */
  enqueue(call: C): void {
    this.forget(call);
    this.queue.set(call.id, call);
    this.kick();
  }

  /** The hub answered `rate_limited`: hold the kind, then send `call` again. */
  refused(call: C, retryAfterMs: number | null): void {
    const now = Date.now();
    this.buckets.get(call.kind)!.hold(now + (retryAfterMs ?? DEFAULT_RETRY_MS), now);
    this.enqueue(call);
  }

  /** `call` got its answer, or failed: forget it. */
  answered(call: C): void {
    this.forget(call);
    this.queue.delete(call.id);
    this.kick();
  }

  close(): void {
    this.isOnline = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.clear();
    this.onWire.clear();
    this.busy.clear();
  }

  private forget(call: C): void {
    if (this.onWire.delete(call.id)) for (const key of call.keys) this.busy.delete(key);
  }

  /** Scan once the current burst of calls is queued (a microtask later). */
  private kick(): void {
    if (this.scanPending || !this.isOnline || this.queue.size === 0) return;
    this.scanPending = true;
    queueMicrotask(() => {
      this.scanPending = false;
      this.scan();
    });
  }

  /** Send what may go now, in call order; set a timer for when more may. */
  private scan(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const blockedKeys = new Set(this.busy);
    const blockedKinds = new Set<string>();
    let soonest: number | null = null;
    // Mostly inserted in id order already, so sorting is cheap.
    for (const call of [...this.queue.values()].sort((a, b) => a.id - b.id)) {
      if (!this.isOnline || blockedKinds.size === KINDS.length) break;
      if (!this.queue.has(call.id)) continue;
      if (call.done) {
        this.queue.delete(call.id);
        continue;
      }
      if (blockedKinds.has(call.kind) || call.keys.some((key) => blockedKeys.has(key))) {
        for (const key of call.keys) blockedKeys.add(key); // later requests to these stay behind it
        continue;
      }
      const bucket = this.buckets.get(call.kind)!;
      const now = Date.now();
      const wait = bucket.waitMs(call.cost, now);
      if (wait > 0) {
        blockedKinds.add(call.kind);
        for (const key of call.keys) blockedKeys.add(key);
        soonest = soonest === null ? wait : Math.min(soonest, wait);
        continue;
      }
      bucket.take(call.cost, now);
      this.queue.delete(call.id);
      this.onWire.set(call.id, call);
      for (const key of call.keys) {
        this.busy.add(key);
        blockedKeys.add(key);
      }
      this.release(call);
    }
    if (soonest !== null && this.isOnline) {
      this.timer = setTimeout(() => this.scan(), Math.min(Math.ceil(soonest), MAX_TIMER));
    }
  }
}
