/**
 * The client's one ordered, bounded event queue, and its consumers.
 *
 * Events wait in the queue (at most `capacity`) until a consumer takes them:
 * listeners (`client.on(...)`) and async iterators (`for await (... of client)`).
 * Each event goes to every consumer, in order; a listener that returns a promise,
 * and an iterator whose own buffer is full, hold the queue back until they are
 * ready. While nobody consumes, events wait, and once the queue is full the
 * client stops handing out messages (they are fetched again later: the hub keeps
 * them) and drops other events, counting them, since the client keeps the state
 * they describe itself. Memory stays bounded however slowly the application reads.
 */

import { ClientClosed } from "./errors.js";
import type { ClientEvent } from "./models.js";

type Consumer = (event: ClientEvent) => void | Promise<void>;

export class EventStream {
  private readonly items: ClientEvent[] = [];
  private readonly consumers = new Set<Consumer>();
  private readonly iterators = new Set<EventIterator>();
  private roomWaiters: (() => void)[] = [];
  private pumping = false;
  private ended = false;
  private endError: ClientClosed | null = null;
  /** Non-message events dropped because the queue was full. */
  dropped = 0;

  constructor(readonly capacity: number, private readonly onError: (error: unknown) => void) {}

  get size(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.capacity;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Queue an event if there is room; false if the queue is full or ended. */
  offer(event: ClientEvent): boolean {
    if (this.ended || this.full) return false;
    this.items.push(event);
    this.pump();
    return true;
  }

  /** Queue a non-message event, or drop it (and count) when the queue is full. */
  emit(event: ClientEvent): boolean {
    if (this.ended) return false;
    if (!this.offer(event)) {
      this.dropped++;
      return false;
    }
    return true;
  }

  /** Queue an event, waiting for room. Resolves false if the stream ended meanwhile. */
  async put(event: ClientEvent): Promise<boolean> {
    while (!this.ended && this.full) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    return this.offer(event);
  }

  /** No more events. `error` (the client closed for good by the hub) ends iterators with it. */
  end(error: ClientClosed | null): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.wakeRoom();
    this.pump();
  }

  /** Drop what is queued: the client was closed by the application. */
  clear(): void {
    this.items.length = 0;
    this.wakeRoom();
  }

  subscribe(consumer: Consumer): () => void {
    this.consumers.add(consumer);
    this.pump();
    return () => {
      this.consumers.delete(consumer);
    };
  }

  iterator(): EventIterator {
    const it = new EventIterator(this, this.capacity);
    this.iterators.add(it);
    this.consumers.add(it.consumer);
    if (this.ended && this.items.length === 0) it.finish(this.endError);
    this.pump();
    return it;
  }

  /** Called by an iterator that is done. */
  release(it: EventIterator): void {
    this.iterators.delete(it);
    this.consumers.delete(it.consumer);
  }

  private wakeRoom(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.run().finally(() => {
      this.pumping = false;
      if ((this.items.length > 0 && this.consumers.size > 0) || this.pendingFinish()) this.pump();
    });
  }

  private pendingFinish(): boolean {
    return this.ended && this.items.length === 0 && [...this.iterators].some((it) => !it.finished);
  }

  private async run(): Promise<void> {
    // Let the code that queued the event finish first (listeners never run inside it).
    await Promise.resolve();
    while (this.items.length > 0 && this.consumers.size > 0) {
      const event = this.items.shift()!;
      this.wakeRoom();
      for (const consumer of [...this.consumers]) {
        try {
          const result = consumer(event);
          if (result && typeof (result as Promise<void>).then === "function") await result;
        } catch (error) {
          this.onError(error);
        }
      }
    }
    if (this.ended && this.items.length === 0) {
      for (const it of this.iterators) it.finish(this.endError);
    }
  }
}

/** An async iterator over the client's events, with its own bounded buffer. */
export class EventIterator implements AsyncIterableIterator<ClientEvent> {
  private readonly buffer: ClientEvent[] = [];
  private waiting: ((result: IteratorResult<ClientEvent>) => void) | null = null;
  private failing: ((error: unknown) => void) | null = null;
  private roomWaiter: (() => void) | null = null;
  private error: ClientClosed | null = null;
  finished = false;
  private done = false;

  constructor(private readonly stream: EventStream, private readonly capacity: number) {}

  readonly consumer = (event: ClientEvent): void | Promise<void> => {
    if (this.done) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failing = null;
      resolve({ value: event, done: false });
      return;
    }
    this.buffer.push(event);
    if (this.buffer.length >= this.capacity) {
      return new Promise<void>((resolve) => {
        this.roomWaiter = resolve;
      });
    }
  };

  finish(error: ClientClosed | null): void {
    if (this.finished) return;
    this.finished = true;
    this.error = error;
    this.settle();
  }

  private settle(): void {
    if (!this.waiting || this.buffer.length > 0) return;
    const resolve = this.waiting;
    const reject = this.failing!;
    this.waiting = this.failing = null;
    this.close();
    if (this.error) reject(this.error);
    else resolve({ value: undefined, done: true });
  }

  private close(): void {
    this.done = true;
    this.stream.release(this);
    this.roomWaiter?.();
    this.roomWaiter = null;
  }

  next(): Promise<IteratorResult<ClientEvent>> {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift()!;
      const wake = this.roomWaiter;
      this.roomWaiter = null;
      wake?.();
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    if (this.finished) {
      this.close();
      return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failing = reject;
    });
  }

  return(): Promise<IteratorResult<ClientEvent>> {
    this.buffer.length = 0;
    const waiting = this.waiting;
    this.waiting = this.failing = null;
    this.close();
    waiting?.({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): EventIterator {
    return this;
  }
}
