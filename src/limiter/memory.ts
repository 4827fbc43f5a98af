import { randomUUID } from 'node:crypto';
import { initialState, type AdaptiveState, type StateTransition } from '../lanes/controller.js';
import { emptyRateState, gcraReserve, isQuotaWindow, type RateState } from './gcra.js';
import type { LaneLimiter, LaneSpec, Lease, Limiter, QuotaCounts, Reservation } from './limiter.js';

export interface MemoryLimiterOptions {
  /** Clock in epoch milliseconds. @default Date.now */
  now?: () => number;
}

/** The in-process limiter, whose lanes can also say and be told what their quota windows hold. */
export interface MemoryLimiter extends Limiter {
  lane(key: string, spec: LaneSpec): MemoryLaneLimiter;
}

export interface MemoryLaneLimiter extends LaneLimiter {
  /** What the lane's quota windows hold: sends booked per bucket. */
  quota(): QuotaCounts;
  /** Replaces what the lane's quota windows hold (its GCRA windows keep theirs). */
  setQuota(counts: QuotaCounts): void;
}

/** Lane limits kept in this process: the same rate windows (GCRA and quotas) and semaphore as the Redis limiter, without Redis. */
export function createMemoryLimiter(options: MemoryLimiterOptions = {}): MemoryLimiter {
  const now = options.now ?? Date.now;
  const lanes = new Map<string, MemoryLane>();
  return {
    kind: 'memory',
    lane(key, spec) {
      let lane = lanes.get(key);
      if (!lane) {
        lane = new MemoryLane(key, spec, now);
        lanes.set(key, lane);
      }
      return lane;
    },
    async close() {
      for (const lane of lanes.values()) lane.close();
      lanes.clear();
    },
  };
}

interface Waiter {
  resolve: (lease: Lease) => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

class MemoryLane implements MemoryLaneLimiter {
  readonly key: string;
  #spec: LaneSpec;
  #now: () => number;
  #rate: RateState;
  #state: AdaptiveState;
  #holders = new Set<string>();
  #waiters: Waiter[] = [];

  constructor(key: string, spec: LaneSpec, now: () => number) {
    this.key = key;
    this.#spec = spec;
    this.#now = now;
    this.#rate = emptyRateState(spec.windows);
    this.#state = initialState(spec);
  }

  async reserve(): Promise<Reservation> {
    const state = this.#state;
    if (state.stopped) return { waitMs: 0, state };
    const now = this.#now();
    const booked = gcraReserve(this.#rate, this.#spec.windows, state.rateFactor, now, state.pausedUntil);
    this.#rate = booked.state;
    return { waitMs: booked.at - now, state };
  }

  acquire(signal?: AbortSignal): Promise<Lease> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#waiters.length === 0 && this.#holders.size < this.#cap()) {
      return Promise.resolve(this.#grant());
    }
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  async state(): Promise<AdaptiveState> {
    return this.#state;
  }

  async update(transition: StateTransition): Promise<AdaptiveState> {
    const next = transition(this.#state, this.#now());
    if (next) {
      // The cap bounds the state, as Redis's does: a process's share while Redis is away
      // (onRedisDown: 'local') learns transitions made for the whole lane's maxConnections.
      this.#state = next.connections > this.#spec.maxConnections ? { ...next, connections: this.#spec.maxConnections } : next;
      this.#wake();
    }
    return this.#state;
  }

  async held(): Promise<number> {
    return this.#holders.size;
  }

  quota(): QuotaCounts {
    return this.#rate.buckets.map((counts) => new Map(counts));
  }

  setQuota(counts: QuotaCounts): void {
    const buckets = this.#spec.windows.map((window, i) => new Map(isQuotaWindow(window) ? counts[i] : undefined));
    this.#rate = { tats: this.#rate.tats, buckets };
  }

  close(): void {
    for (const waiter of this.#waiters) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new Error('limiter closed'));
    }
    this.#waiters = [];
  }

  #cap(): number {
    return Math.max(1, Math.floor(this.#state.connections));
  }

  #grant(): Lease {
    const id = randomUUID();
    this.#holders.add(id);
    // Only release() takes a holder out: a flag answers `lost` without a lookup per message.
    let released = false;
    return {
      id,
      get lost() {
        return released;
      },
      release: async () => {
        released = true;
        if (this.#holders.delete(id)) this.#wake();
      },
    };
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#holders.size < this.#cap()) {
      const waiter = this.#waiters.shift()!;
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(this.#grant());
    }
  }
}
