import type { AdaptiveState, StateTransition } from '../lanes/controller.js';

/** One rate window of a lane, in the form the limiter uses. */
export interface RateWindowSpec {
  /** Sends admitted per `perMs`. */
  max: number;
  perMs: number;
  /** How many sends may go back to back after an idle period (GCRA burst tolerance). */
  burst: number;
}

/** The configured limits of one lane. The adaptive state scales them down at run time. */
export interface LaneSpec {
  windows: readonly RateWindowSpec[];
  maxConnections: number;
}

/** A granted connection slot. Release it when the connection closes. */
export interface Lease {
  readonly id: string;
  /** True once the limiter no longer counts this slot as held (it expired, or Redis lost it): close the connection. */
  readonly lost: boolean;
  release(): Promise<void>;
}

/**
 * Sends booked per bucket of each quota window of a lane (a window over a minute; see `gcra.ts`):
 * one map per window, in the lane's order, from the absolute bucket number `floor(at / bucketMs)`
 * to its count (empty for a window that is not a quota).
 */
export type QuotaCounts = readonly ReadonlyMap<number, number>[];

export interface Reservation {
  /** How long to wait before sending, in milliseconds. The slot is booked: do not call `reserve()` again for it. */
  waitMs: number;
  /** The lane's adaptive state as of the reservation. When `stopped` is set, nothing was booked. */
  state: AdaptiveState;
  /**
   * A shared limiter's quota counts after this booking, every process's together, when the lane
   * has a quota window and something was booked: what a process that goes on alone while the
   * shared store is away starts from.
   */
  quota?: QuotaCounts;
}

/**
 * The limits of one lane, wherever they are kept. Every method is safe to call from many
 * concurrent sends and, for shared implementations, from many processes.
 */
export interface LaneLimiter {
  readonly key: string;
  /**
   * Books the next send slot in every rate window at the lane's effective rate, not before the
   * lane's pause ends, and says how long to wait for it. One call per attempt. The signal and the
   * deadline (epoch ms) bound how long the call may wait for the limiter itself (Redis away), not
   * the wait it returns.
   */
  reserve(signal?: AbortSignal, deadline?: number): Promise<Reservation>;
  /** Waits for a connection slot under the lane's effective connection cap. Rejects with the signal's reason on abort. */
  acquire(signal?: AbortSignal): Promise<Lease>;
  /** The lane's adaptive state now. */
  state(): Promise<AdaptiveState>;
  /** Applies a controller transition atomically (for every process sharing the lane) and returns the new state. */
  update(transition: StateTransition): Promise<AdaptiveState>;
  /** Connection slots held now (by every process sharing the lane). */
  held(): Promise<number>;
}

/** Where lane limits live: this process (`memory`) or Redis, shared by every process. */
export interface Limiter {
  readonly kind: 'memory' | 'redis';
  lane(key: string, spec: LaneSpec): LaneLimiter;
  close(): Promise<void>;
}
