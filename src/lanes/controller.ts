/**
 * The adaptive controller of a lane: a pure state machine. The lane feeds it what the server said;
 * it answers with the lane's new effective rate, connection cap and pause. The limiter stores the
 * state (in Redis when configured) so that every process slows down together.
 *
 * Rate follows AIMD, as Postfix's concurrency feedback and PowerMTA's backoff mode do: a
 * `rate-limited` reply multiplies the rate by `decrease` (at most once per `cooldownMs`, since the
 * replies to sends already in flight report the same overload), and each success adds back
 * `increase` of the configured rate per second of sending.
 */
export interface AdaptiveState {
  /** Share of the configured rate the lane may use now, in `[minRateFactor, 1]`. */
  rateFactor: number;
  /** Effective connection cap; fractional so that additive increase can creep up. Use `Math.floor`. */
  connections: number;
  /** Epoch ms (limiter clock) before which the lane sends nothing; 0 when not paused. */
  pausedUntil: number;
  /** Why the lane is paused, while it is. */
  pauseReason: string | null;
  /** Set when the lane is stopped for good (bad credentials): the reason. */
  stopped: string | null;
  /** Epoch ms of the last multiplicative decrease (rate or connections). */
  lastDecreaseAt: number;
  /**
   * The rate factor at which the server last said "too fast" (1 when none is known). The lane
   * climbs back quickly to just below it and probes past it slowly, as TCP CUBIC does around its
   * last loss, so that it spends its time near the server's real limit instead of below it.
   */
  ceiling: number;
}

/** A change to apply atomically. Returns `null` when nothing changes (so nothing is written). */
export type StateTransition = (state: AdaptiveState, now: number) => AdaptiveState | null;

export interface ControllerOptions {
  /** The configured connection cap. */
  maxConnections: number;
  /** The configured rate of the lane's tightest window, in sends per second (`Infinity` when unlimited). */
  baseRatePerSecond: number;
  /** Multiplier applied on a rate or connection refusal. @default 0.7 */
  decrease: number;
  /** Share of the configured rate regained per second of successful sending. @default 0.05 */
  increase: number;
  /** The lowest share of the configured rate. @default 0.05 */
  minRateFactor: number;
  /** One decrease per this many milliseconds at most. @default 1000 */
  cooldownMs: number;
  /** Successes per connection added back, times the current cap (Postfix-style slow start). @default 20 */
  successesPerConnection: number;
}

export const DEFAULT_CONTROLLER = {
  decrease: 0.7,
  increase: 0.05,
  minRateFactor: 0.05,
  cooldownMs: 1_000,
  successesPerConnection: 20,
} as const satisfies Omit<ControllerOptions, 'maxConnections' | 'baseRatePerSecond'>;

export function initialState(options: Pick<ControllerOptions, 'maxConnections'>): AdaptiveState {
  return {
    rateFactor: 1,
    connections: options.maxConnections,
    pausedUntil: 0,
    pauseReason: null,
    stopped: null,
    lastDecreaseAt: 0,
    ceiling: 1,
  };
}

/** Within this share of the ceiling the lane climbs at `1 / NEAR_CEILING_SLOWDOWN` of its speed. */
const NEAR_CEILING = 0.95;
const NEAR_CEILING_SLOWDOWN = 8;

/** A send succeeded: climb back towards the configured rate and connection cap. */
export function onSuccess(options: ControllerOptions): StateTransition {
  return (state) => {
    if (state.rateFactor >= 1 && state.connections >= options.maxConnections) return null;
    // `increase` per second of sending: each success adds increase / (sends per second now).
    const ratePerSecond = options.baseRatePerSecond * state.rateFactor;
    let rateStep = Number.isFinite(ratePerSecond) && ratePerSecond > 0 ? options.increase / ratePerSecond : 1;
    if (state.rateFactor >= state.ceiling * NEAR_CEILING) rateStep /= NEAR_CEILING_SLOWDOWN;
    const rateFactor = Math.min(1, state.rateFactor + rateStep);
    return {
      ...state,
      rateFactor,
      // Past the ceiling without a refusal: the server takes more now, forget it.
      ceiling: rateFactor > state.ceiling ? 1 : state.ceiling,
      connections: Math.min(options.maxConnections, state.connections + 1 / (options.successesPerConnection * Math.max(1, Math.floor(state.connections)))),
    };
  };
}

/** The server said the lane sends too fast. */
export function onRateLimited(options: ControllerOptions): StateTransition {
  return (state, now) => {
    if (now - state.lastDecreaseAt < options.cooldownMs) return null;
    return {
      ...state,
      rateFactor: Math.max(options.minRateFactor, state.rateFactor * options.decrease),
      ceiling: state.rateFactor,
      lastDecreaseAt: now,
    };
  };
}

/**
 * The server refused a connection for having too many. `held` is how many connections the lane
 * had open when it was refused (the refused one included), when known: the server's limit is below
 * it, so the cap drops to at most `held - 1` straight away instead of stepping down over several
 * refusals, and by at least one `decrease` step (the server may count connections we cannot see).
 */
export function onConnectionLimited(options: ControllerOptions, held?: number): StateTransition {
  return (state, now) => {
    if (now - state.lastDecreaseAt < options.cooldownMs && (held === undefined || held - 1 >= Math.floor(state.connections))) {
      return null;
    }
    const stepped = Math.floor(state.connections * options.decrease);
    const known = held === undefined ? Infinity : held - 1;
    const connections = Math.max(1, Math.min(stepped, known, Math.floor(state.connections) - 1));
    return { ...state, connections, lastDecreaseAt: now };
  };
}

/** Pauses the lane until `until` (epoch ms, limiter clock), unless it is already paused for longer. */
export function pauseUntil(until: number, reason: string): StateTransition {
  return (state) => {
    if (state.pausedUntil >= until) return null;
    return { ...state, pausedUntil: until, pauseReason: reason };
  };
}

/** Pauses the lane for `ms` from the limiter's now. */
export function pauseFor(ms: number, reason: string): StateTransition {
  return (state, now) => pauseUntil(now + ms, reason)(state, now);
}

/** Stops the lane for good: its pending and future messages fail. */
export function stop(reason: string): StateTransition {
  return (state) => (state.stopped === reason ? null : { ...state, stopped: reason });
}

/**
 * Lifts a stop. A stop is for the credentials that caused it: a new mailer, which may bring fixed
 * ones, starts its lanes with this rather than inherit a stop kept in Redis.
 */
export function unstop(): StateTransition {
  return (state) => (state.stopped === null ? null : { ...state, stopped: null });
}
