import { describe, expect, it } from 'vitest';
import { DEFAULT_CONTROLLER, initialState, onConnectionLimited, onRateLimited, onSuccess, pauseFor, pauseUntil, stop, type AdaptiveState, type StateTransition } from '../../src/lanes/controller.js';

const options = { ...DEFAULT_CONTROLLER, maxConnections: 6, baseRatePerSecond: 50 };
const apply = (state: AdaptiveState, transition: StateTransition, now: number) => transition(state, now) ?? state;

describe('adaptive controller', () => {
  it('starts at the configured rate and connection cap', () => {
    expect(initialState(options)).toEqual({ rateFactor: 1, connections: 6, pausedUntil: 0, pauseReason: null, stopped: null, lastDecreaseAt: 0, ceiling: 1 });
  });

  it('cuts the rate multiplicatively on rate-limited, once per cooldown', () => {
    let state = initialState(options);
    state = apply(state, onRateLimited(options), 10_000);
    expect(state.rateFactor).toBeCloseTo(0.7);
    // Replies to sends already in flight report the same overload: no second cut within the cooldown.
    expect(onRateLimited(options)(state, 10_500)).toBeNull();
    state = apply(state, onRateLimited(options), 11_000);
    expect(state.rateFactor).toBeCloseTo(0.49);
  });

  it('never goes below the floor', () => {
    let state = initialState(options);
    for (let i = 1; i <= 50; i++) state = apply(state, onRateLimited(options), i * 10_000);
    expect(state.rateFactor).toBe(options.minRateFactor);
  });

  it('climbs back additively: `increase` of the configured rate per second of sending', () => {
    let state = { ...initialState(options), rateFactor: 0.5 };
    // At 0.5 × 50/s, one second is 25 successes.
    for (let i = 0; i < 25; i++) state = apply(state, onSuccess(options), 0);
    expect(state.rateFactor).toBeGreaterThan(0.545);
    expect(state.rateFactor).toBeLessThan(0.56);
    for (let i = 0; i < 10_000; i++) state = apply(state, onSuccess(options), 0);
    expect(state.rateFactor).toBe(1);
    expect(onSuccess(options)(state, 0)).toBeNull();
  });

  it('remembers the rate that was refused, climbs fast to just below it and probes past it slowly', () => {
    let state = apply({ ...initialState(options), rateFactor: 0.5 }, onRateLimited(options), 10_000);
    expect(state).toMatchObject({ rateFactor: 0.35, ceiling: 0.5 });
    const successesTo = (target: number) => {
      let n = 0;
      while (state.rateFactor < target) {
        state = apply(state, onSuccess(options), 0);
        n++;
      }
      return n;
    };
    const fast = successesTo(0.475); // 0.35 → 0.95 × ceiling at full speed
    const slow = successesTo(0.5); // the last 5% at an eighth of the speed
    expect(fast / (0.475 - 0.35)).toBeLessThan(slow / (0.5 - 0.475) / 6);
    // Past the ceiling with no refusal: the limit moved, the ceiling is forgotten.
    state = apply(state, onSuccess(options), 0);
    expect(state.ceiling).toBe(1);
  });

  it('drops the connection cap below what was open when a connection was refused', () => {
    const state = apply(initialState(options), onConnectionLimited(options, 3), 1_000);
    expect(state.connections).toBe(2);
    // Without a count it steps down by `decrease`.
    expect(apply(initialState(options), onConnectionLimited(options), 1_000).connections).toBe(4);
    // Never below one.
    expect(apply({ ...state, lastDecreaseAt: 0 }, onConnectionLimited(options, 1), 5_000).connections).toBe(1);
  });

  it('still lowers the cap within the cooldown when the open count shows it is too high', () => {
    const first = apply(initialState(options), onConnectionLimited(options), 1_000);
    expect(first.connections).toBe(4);
    expect(apply(first, onConnectionLimited(options, 3), 1_100).connections).toBe(2);
    expect(onConnectionLimited(options, 6)(first, 1_100)).toBeNull();
  });

  it('adds connections back slowly as sends succeed', () => {
    let state = { ...initialState(options), connections: 2 };
    let successes = 0;
    while (Math.floor(state.connections) < 3) {
      state = apply(state, onSuccess(options), 0);
      successes++;
    }
    // successesPerConnection × cap (floating-point sums may need one more)
    expect(successes).toBeGreaterThanOrEqual(40);
    expect(successes).toBeLessThanOrEqual(41);
  });

  it('pauses until a time, keeping the longer of two pauses', () => {
    let state = apply(initialState(options), pauseFor(60_000, 'quota-exceeded'), 1_000);
    expect(state).toMatchObject({ pausedUntil: 61_000, pauseReason: 'quota-exceeded' });
    expect(pauseUntil(30_000, 'retry-after')(state, 2_000)).toBeNull();
    state = apply(state, pauseUntil(90_000, 'retry-after'), 2_000);
    expect(state.pausedUntil).toBe(90_000);
  });

  it('stops for good on bad credentials', () => {
    const state = apply(initialState(options), stop('authentication failed'), 0);
    expect(state.stopped).toBe('authentication failed');
    expect(stop('authentication failed')(state, 1)).toBeNull();
  });
});
