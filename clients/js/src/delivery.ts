/**
 * Exactly-once, in-order delivery of messages to the application, within bounds:
 * the JavaScript twin of the Python SDK's `delivery.py`.
 *
 * The hub numbers each conversation's messages 1, 2, 3, ... For every conversation
 * the client tracks `delivered` (everything up to it went to the event queue, or
 * was the client's own send) and `want` (the highest seq known to exist). Messages
 * that arrive ahead of `delivered + 1` wait in a small buffer; a hole that does not
 * fill by itself within a moment (a live message can overtake the resume backlog)
 * is fetched with `history`, a page at a time. A `(conv, seq)` at or below
 * `delivered`, or already buffered, is a repeat and is dropped.
 *
 * The socket reader only files messages and wakes a per-conversation worker. When
 * the event queue is full a worker waits, the buffer fills, and further messages
 * are dropped and fetched again later (the hub keeps them). Tombstones and hidden
 * stubs are messages like any other here, so seqs stay gap-free; an `unsent` event
 * turns a message still waiting in the buffer into its tombstone.
 */

import { ClientClosed, ConnectionLost, Forbidden, NotFound, RequestFailed } from "./errors.js";
import { type Message, tombstone } from "./models.js";
import type { EventStream } from "./stream.js";

export type Fetch = (conv: string, first: number, last: number) => Promise<Message[]>;

export interface Logger {
  debug(message: string, ...rest: unknown[]): void;
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

/** A one-shot wake-up: `wait(ms)` resolves on `set()` or after `ms`. */
class Wake {
  private waiters: (() => void)[] = [];
  set(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const waiters = this.waiters;
      function done(): void {
        clearTimeout(timer);
        const at = waiters.indexOf(done);
        if (at >= 0) waiters.splice(at, 1);
        resolve();
      }
      waiters.push(done);
    });
  }
}

class ConvSync {
  /** seq -> message waiting for its turn; null marks the client's own send (held, never emitted). */
  readonly buffer = new Map<number, Message | null>();
  /** Holes up to this seq will not arrive by themselves: fetch them without waiting. */
  urgentUntil = 0;
  worker: Promise<void> | null = null;
  readonly wake = new Wake();

  constructor(public delivered: number, public want: number) {}

  contiguous(): number {
    let seq = this.delivered;
    while (this.buffer.has(seq + 1)) seq++;
    return seq;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Delivery {
  private readonly convs = new Map<string, ConvSync>();
  private stopped = false;
  /** Repeats of a (conv, seq) already held, dropped. */
  duplicates = 0;
  page: number;

  constructor(
    private readonly stream: EventStream,
    private readonly fetch: Fetch,
    private readonly isOwn: (msg: Message) => boolean,
    private readonly maxBuffered: number,
    private readonly graceMs: number,
    private readonly log: Logger,
    page = 100,
  ) {
    this.page = page;
  }

  knows(conv: string): boolean {
    return this.convs.has(conv);
  }

  /** Start following `conv`: everything up to `delivered` counts as delivered. */
  track(conv: string, delivered: number, want: number, urgent: boolean): void {
    if (!this.convs.has(conv)) this.convs.set(conv, new ConvSync(delivered, Math.max(want, delivered)));
    this.raiseWant(conv, want, urgent);
  }

  /** The hub says `conv` holds messages up to `lastSeq`. */
  raiseWant(conv: string, lastSeq: number, urgent = false): void {
    const st = this.convs.get(conv);
    if (st === undefined) return;
    st.want = Math.max(st.want, lastSeq);
    if (urgent) st.urgentUntil = Math.max(st.urgentUntil, lastSeq);
    if (st.want > st.delivered) this.kick(st, conv);
  }

  forget(conv: string): void {
    const st = this.convs.get(conv);
    this.convs.delete(conv);
    st?.wake.set();
  }

  onMessage(msg: Message): void {
    let st = this.convs.get(msg.conv);
    if (st === undefined) {
      // A conversation we heard of only now: start from this message.
      st = new ConvSync(msg.seq - 1, msg.seq - 1);
      this.convs.set(msg.conv, st);
    }
    if (msg.seq <= st.delivered || st.buffer.has(msg.seq)) {
      this.duplicates++;
      return;
    }
    st.want = Math.max(st.want, msg.seq);
    if (st.worker === null && st.buffer.size === 0 && msg.seq === st.delivered + 1) {
      if (this.isOwn(msg)) {
        st.delivered = msg.seq;
        return;
      }
      if (this.stream.offer(msg)) {
        st.delivered = msg.seq;
        return;
      }
    }
    if (st.buffer.size < this.maxBuffered) st.buffer.set(msg.seq, msg);
    else st.urgentUntil = Math.max(st.urgentUntil, msg.seq); // no room: the hub keeps it
    this.kick(st, msg.conv);
  }

  /** The client's own send was stored as `seq`: held, but not an event. */
  onOwn(conv: string, seq: number): void {
    let st = this.convs.get(conv);
    if (st === undefined) {
      st = new ConvSync(seq - 1, seq - 1);
      this.convs.set(conv, st);
    }
    if (seq <= st.delivered) return;
    st.want = Math.max(st.want, seq);
    if (st.worker === null && st.buffer.size === 0 && seq === st.delivered + 1) {
      st.delivered = seq;
      return;
    }
    st.buffer.set(seq, null);
    this.kick(st, conv);
  }

  /** Message `seq` was taken back: if it still waits here, it goes out as a tombstone. */
  onUnsent(conv: string, seq: number): void {
    const st = this.convs.get(conv);
    const msg = st?.buffer.get(seq);
    if (st !== undefined && msg) st.buffer.set(seq, tombstone(msg));
  }

  onGap(conv: string, fromSeq: number, toSeq: number): void {
    if (!this.convs.has(conv)) this.convs.set(conv, new ConvSync(fromSeq - 1, fromSeq - 1));
    this.raiseWant(conv, toSeq, true);
  }

  /** [conv, highest contiguous seq held, whether more is known to exist] for each conv. */
  resumePoints(): [string, number, boolean][] {
    const out: [string, number, boolean][] = [];
    for (const [conv, st] of this.convs) {
      const seq = st.contiguous();
      out.push([conv, seq, seq < st.want]);
    }
    return out;
  }

  /** No more deliveries; what was received stays readable through `resumePoints()`. */
  stop(): void {
    this.stopped = true;
    for (const st of this.convs.values()) st.wake.set();
  }

  // -- the per-conversation worker ---------------------------------------

  private kick(st: ConvSync, conv: string): void {
    if (this.stopped) return;
    if (st.worker === null) {
      st.worker = this.run(conv, st);
    } else {
      st.wake.set();
    }
  }

  private alive(conv: string, st: ConvSync): boolean {
    return !this.stopped && this.convs.get(conv) === st;
  }

  private async run(conv: string, st: ConvSync): Promise<void> {
    await Promise.resolve(); // st.worker is set before the loop looks at it
    let failures = 0;
    try {
      while (st.delivered < st.want && this.alive(conv, st)) {
        const next = st.delivered + 1;
        if (st.buffer.has(next)) {
          const msg = st.buffer.get(next)!;
          st.buffer.delete(next);
          // Advance first: a repeat arriving while we wait for room is then dropped.
          st.delivered = next;
          if (msg !== null && !this.isOwn(msg)) {
            if (!(await this.stream.put(msg))) return;
          }
          continue;
        }
        if (next > st.urgentUntil && (await this.arrives(st, next))) continue;
        if (!this.alive(conv, st)) return;
        const first = next;
        let last = Math.min(st.want, next + this.page - 1);
        for (const seq of st.buffer.keys()) if (seq > next) last = Math.min(last, seq - 1);
        let page: Message[];
        try {
          page = await this.fetch(conv, first, last);
        } catch (error) {
          if (error instanceof Forbidden || error instanceof NotFound) {
            this.log.info(`${conv}: no longer readable; stop following it`);
            if (this.convs.get(conv) === st) this.convs.delete(conv);
            return;
          }
          if (error instanceof ClientClosed) return;
          if (error instanceof ConnectionLost) continue; // the reconnect backs off already
          failures++;
          const level = error instanceof RequestFailed ? "warn" : "info";
          this.log[level](`${conv}: filling ${first}..${last} failed (${String(error)}); retrying`);
          await sleep(Math.min(5000, 200 * 2 ** failures));
          continue;
        }
        failures = 0;
        for (const msg of page) {
          if (msg.seq > st.delivered && !st.buffer.has(msg.seq)) st.buffer.set(msg.seq, msg);
        }
        if (!st.buffer.has(next)) {
          this.log.warn(`${conv}: message ${next} is not in history; skipping it`);
          st.delivered = next;
        }
      }
      // Buffered repeats at or below delivered are of no further use.
      for (const seq of [...st.buffer.keys()]) if (seq <= st.delivered) st.buffer.delete(seq);
    } finally {
      st.worker = null;
      // Something may have been filed after the loop's last check.
      if (this.alive(conv, st) && st.want > st.delivered) {
        setTimeout(() => {
          if (this.alive(conv, st) && st.worker === null && st.want > st.delivered) this.kick(st, conv);
        }, 0);
      }
    }
  }

  /** Wait up to the grace period for `seq` to arrive by itself. */
  private async arrives(st: ConvSync, seq: number): Promise<boolean> {
    const deadline = Date.now() + this.graceMs;
    while (!st.buffer.has(seq) && seq > st.urgentUntil && !this.stopped) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      await st.wake.wait(remaining);
    }
    return st.buffer.has(seq);
  }
}
