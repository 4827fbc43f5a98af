/** What the queue needs of a job: the signal that calls it off, and when it expires. */
export interface QueueableJob {
  signal: AbortSignal | undefined;
  /** Compared with the `now` given to `expired()`: epoch ms, or the owner's own clock (a lane's stops during quota pauses). */
  expires: number;
}

interface Entry<J> {
  job: J;
  live: boolean;
}

interface Watch {
  /** Jobs waiting with this signal. */
  waiting: number;
  onAbort: () => void;
}

/**
 * A lane's waiting jobs, first in first out, in O(1) per job however long the line:
 *
 * - taking from the head moves an index instead of shifting the array (`Array#shift` on a line of
 *   20,000 copies it every time);
 * - a job taken out of the middle (its signal aborted, its deadline passed) is marked and skipped,
 *   not spliced out;
 * - jobs that share a signal (every message of a batch, every `send()` without one of its own
 *   shares the mailer's) share one abort listener: Node's `addEventListener` walks the signal's
 *   listeners to refuse duplicates, so one listener per waiting job costs O(n) each. A signal's
 *   jobs are counted, not listed: when it aborts (rarely), the line is searched for them.
 */
export class JobQueue<J extends QueueableJob> {
  #entries: Array<Entry<J> | undefined> = [];
  #head = 0;
  #size = 0;
  #watches = new Map<AbortSignal, Watch>();
  /**
   * The watch of the last signal to have no job left, kept listening: a lane whose line empties
   * after every job (sends that trickle in) would add and remove the same listener per job. At most
   * one is kept, so that signals used once (a `send()` with its own) are not held.
   */
  #spare: AbortSignal | undefined;
  #onAbort: (job: J) => void;

  /** `onAbort` is called with each waiting job whose signal aborts, once it is out of the queue. */
  constructor(onAbort: (job: J) => void) {
    this.#onAbort = onAbort;
  }

  /** Jobs waiting. */
  get size(): number {
    return this.#size;
  }

  /** Adds `job` at the tail. A job whose signal has already aborted goes straight to `onAbort`. */
  push(job: J): void {
    if (job.signal?.aborted) return this.#onAbort(job);
    const entry = this.#enter(job);
    this.#entries.push(entry);
  }

  /** Puts `job` back at the head (it was taken and could not go yet). */
  unshift(job: J): void {
    if (job.signal?.aborted) return this.#onAbort(job);
    const entry = this.#enter(job);
    if (this.#head > 0) this.#entries[--this.#head] = entry;
    else this.#entries.unshift(entry);
  }

  /** Takes the job at the head, or `undefined` when none waits. */
  shift(): J | undefined {
    while (this.#head < this.#entries.length) {
      const entry = this.#entries[this.#head];
      this.#entries[this.#head++] = undefined;
      if (entry?.live) {
        this.#leave(entry);
        this.#compact();
        return entry.job;
      }
    }
    this.#entries = [];
    this.#head = 0;
    return undefined;
  }

  /** Takes out and returns every job that expires at or before `now`. */
  expired(now: number): J[] {
    const out: J[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i];
      if (entry?.live && entry.job.expires <= now) {
        this.#leave(entry);
        out.push(entry.job);
      }
    }
    return out;
  }

  /** Takes out and returns every waiting job. */
  drain(): J[] {
    const out: J[] = [];
    for (let job = this.shift(); job; job = this.shift()) out.push(job);
    return out;
  }

  #enter(job: J): Entry<J> {
    const entry: Entry<J> = { job, live: true };
    this.#size++;
    const { signal } = job;
    if (signal) {
      let watch = this.#watches.get(signal);
      if (!watch) {
        watch = { waiting: 0, onAbort: () => this.#aborted(signal) };
        this.#watches.set(signal, watch);
        signal.addEventListener('abort', watch.onAbort, { once: true });
      }
      watch.waiting++;
    }
    return entry;
  }

  #leave(entry: Entry<J>): void {
    if (!entry.live) return;
    entry.live = false;
    this.#size--;
    const { signal } = entry.job;
    if (!signal) return;
    const watch = this.#watches.get(signal);
    if (!watch) return;
    if (--watch.waiting === 0 && this.#spare !== signal) {
      if (this.#spare) this.#unwatch(this.#spare);
      this.#spare = signal;
    }
  }

  #unwatch(signal: AbortSignal): void {
    const watch = this.#watches.get(signal);
    if (!watch || watch.waiting > 0) return;
    signal.removeEventListener('abort', watch.onAbort);
    this.#watches.delete(signal);
  }

  /** Takes every job waiting with `signal` out of the line, first to last, and hands each to `onAbort`. */
  #aborted(signal: AbortSignal): void {
    this.#watches.delete(signal);
    if (this.#spare === signal) this.#spare = undefined;
    const out: J[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i];
      if (entry?.live && entry.job.signal === signal) {
        this.#leave(entry);
        out.push(entry.job);
      }
    }
    for (const job of out) this.#onAbort(job);
  }

  /** Stops listening to the signal kept for reuse (call when the queue is no longer used). */
  dispose(): void {
    if (this.#spare) this.#unwatch(this.#spare);
    this.#spare = undefined;
  }

  /** Drops the taken slots at the front once they are the larger part of the array. */
  #compact(): void {
    if (this.#head >= 1024 && this.#head * 2 >= this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
