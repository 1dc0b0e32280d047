// History requests, paced under the rate the hub announces in welcome.limits
// (rate_history_per_s, rate_history_burst: 5 a second in bursts of 10 by default).
// The hub refuses history over that rate, and closes a connection that keeps
// going over it, so the page never fires one request per chat at once: it spends
// half the burst straight away and then asks at half the rate. The other half is
// left for what the page does not pace: the client's own gap filling, and a second
// tab of the same user. A chat the user opens jumps the queue.

const DEFAULT_RATE_PER_S = 5;
const DEFAULT_BURST = 10;
const MAX_RETRIES = 3;

export class HistoryPacer {
  /** `client`: a connected clipwire-client; its welcome says how fast we may ask. */
  constructor(client) {
    const limits = client.welcome?.limits ?? {};
    const rate = positive(limits.rate_history_per_s, DEFAULT_RATE_PER_S);
    const burst = positive(limits.rate_history_burst, DEFAULT_BURST);
    this.client = client;
    this.perMs = rate / 2 / 1000;
    this.burst = Math.max(1, Math.floor(burst / 2));
    this.tokens = this.burst;
    this.at = performance.now();
    this.queue = []; // {conv, options, skip, resolve, reject, tries}
    this.timer = null;
  }

  /** `client.history(conv, options)` when the pace allows; `urgent` ones go first. A job
   * whose `skip()` is true by its turn resolves to null without asking the hub. */
  history(conv, options, { urgent = false, skip = null } = {}) {
    return new Promise((resolve, reject) => {
      const job = { conv, options, skip, resolve, reject, tries: 0 };
      if (urgent) this.queue.unshift(job);
      else this.queue.push(job);
      this.pump();
    });
  }

  refill() {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
  }

  pump() {
    if (this.timer !== null) return;
    this.refill();
    while (this.queue.length && this.tokens >= 1) {
      const job = this.queue.shift();
      if (job.skip?.()) {
        job.resolve(null);
        continue;
      }
      this.tokens -= 1;
      this.run(job);
    }
    if (this.queue.length) this.wait((1 - this.tokens) / this.perMs);
  }

  wait(ms) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, Math.max(0, Math.ceil(ms)));
  }

  async run(job) {
    try {
      job.resolve(await this.client.history(job.conv, job.options));
    } catch (e) {
      if (e?.code !== "rate_limited" || ++job.tries > MAX_RETRIES) {
        job.reject(e);
        return;
      }
      // Over the limit after all (another tab, or the client filling a gap): wait as told.
      console.warn(`history of ${job.conv}: rate_limited, again in ${e.retryAfterMs ?? 1000} ms`);
      this.tokens = 0;
      this.at = performance.now();
      this.queue.unshift(job);
      this.wait(Math.max(e.retryAfterMs ?? 1000, 1 / this.perMs));
    }
  }
}

function positive(value, fallback) {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}
