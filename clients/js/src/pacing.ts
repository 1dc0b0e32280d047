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
 * - A share costs what the hub counts: each distinct user in `to` and each distinct
 *   conversation in `convs`. One that costs more than the bucket holds (41 to 100
 *   targets at the default burst of 40) waits until the bucket is full, then goes out
 *   and leaves it in debt, so later requests wait behind it. The hub refuses it once,
 *   sets its cost aside and names its time; it then goes out again and passes.
 * - A refusal (that one, or another device of the same user spent the user's share)
 *   puts the request back at its place and holds its kind for `retry_after_ms`; the
 *   same frame (the same `cmid`) then goes out again, and the application sees no
 *   error. The hub counts the repeat against nothing (it set the cost aside when it
 *   refused), so neither does the bucket: it is empty at the time the hub named.
 * - Times come from `performance.now()`, which a wall-clock step does not move.
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
/** Milliseconds from a monotonic clock (Node 20, browsers and React Native have it). */
const monotonicMs = (): number => performance.now();

/** What the hub counts for a share: each of `to` and `convs` without repeats. */
export function shareCost(to: readonly string[], convs: readonly string[]): number {
  return Math.max(1, new Set(to).size + new Set(convs).size);
}

/** The client's copy of one of its connection's buckets on the hub (times in ms). */
export class TokenBucket {
  private ratePerMs: number | null = null; // null: not announced; only refusals pace
  private cap = 0;
  private tokens = 0;
  private stamp = 0;
  private heldUntil = 0;

  /** A new connection: its buckets on the hub start full, so does this one. */
  reset(ratePerS: unknown, burst: unknown, now: number): void {
    if (typeof ratePerS !== "number" || typeof burst !== "number" || !(ratePerS > 0) || !(burst > 0)) {
      this.ratePerMs = null;
      return;
    }
    this.ratePerMs = ratePerS / 1000;
    this.cap = Math.max(1, burst - Math.max(1, burst / 10));
    this.tokens = this.cap;
    this.stamp = now;
  }

  /** Milliseconds until `cost` can be spent (0: now); a cost of 0 (a repeat the hub
   *  has set aside the tokens for) waits only for the hold. */
  waitMs(cost: number, now: number): number {
    const held = Math.max(0, this.heldUntil - now);
    if (this.ratePerMs === null || cost <= 0) return held;
    this.refill(now);
    // A cost over the cap goes out from a full bucket and leaves it in debt: the
    // reserve covers it up to the burst; past the burst, the hub names its time.
    return Math.max(held, (Math.min(cost, this.cap) - this.tokens) / this.ratePerMs);
  }

  take(cost: number, now: number): void {
    if (this.ratePerMs === null) return;
    this.refill(now);
    this.tokens -= cost;
  }

  /** The hub refused and set the cost aside until `until`: spend nothing before then,
   *  and be empty then (the hub's bucket is, once the repeat is accepted). */
  hold(until: number, now: number): void {
    this.heldUntil = Math.max(this.heldUntil, until);
    if (this.ratePerMs === null) return;
    this.refill(now);
    this.tokens = Math.min(this.tokens, (now - this.heldUntil) * this.ratePerMs);
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
  private readonly setAside = new Set<number>(); // refused on this connection: the repeat is paid
  private isOnline = false;
  private scanPending = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly release: (call: C) => void, readonly maxQueued: number) {}

  get full(): boolean {
    return this.queue.size >= this.maxQueued;
  }

  /** A welcome: buckets full at the announced rates, then release what waits. */
  online(limits: Readonly<Record<string, unknown>>): void {
    const at = monotonicMs();
    for (const [kind, bucket] of this.buckets) bucket.reset(limits[`rate_${kind}_per_s`], limits[`rate_${kind}_burst`], at);
    this.isOnline = true;
    this.kick();
  }

  /** The connection dropped: what was on the wire waits here for the next one. */
  offline(): void {
    this.isOnline = false;
    this.setAside.clear(); // the hub keeps what it set aside for a connection only
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
    const at = monotonicMs();
    this.buckets.get(call.kind)!.hold(at + (retryAfterMs ?? DEFAULT_RETRY_MS), at);
    this.setAside.add(call.id);
    this.enqueue(call);
  }

  /** `call` got its answer, or failed: forget it. */
  answered(call: C): void {
    this.forget(call);
    this.queue.delete(call.id);
    this.setAside.delete(call.id);
    this.kick();
  }

  close(): void {
    this.isOnline = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.clear();
    this.onWire.clear();
    this.busy.clear();
    this.setAside.clear();
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
      const at = monotonicMs();
      const cost = this.setAside.has(call.id) ? 0 : call.cost;
      const wait = bucket.waitMs(cost, at);
      if (wait > 0) {
        blockedKinds.add(call.kind);
        for (const key of call.keys) blockedKeys.add(key);
        soonest = soonest === null ? wait : Math.min(soonest, wait);
        continue;
      }
      bucket.take(cost, at);
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
