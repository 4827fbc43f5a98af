import { randomUUID } from 'node:crypto';
import type { AdaptiveState, StateTransition } from '../lanes/controller.js';
import { sleep } from '../retry/sleep.js';
import type { LaneLimiter, LaneSpec, Lease, Limiter, QuotaCounts, Reservation } from './limiter.js';
import { isQuotaWindow } from './gcra.js';
import { createMemoryLimiter, type MemoryLaneLimiter } from './memory.js';
import type { RedisLimiter } from './redis.js';
import { runScript, type ScriptClient } from './scripts.js';

export interface FailoverOptions {
  /** The shared limiter (Redis); with `mode: 'local'`, made with `quotaCounts: true` so that a quota carries over an outage. */
  primary: RedisLimiter;
  /** The client under it: counts the processes sharing the prefix, for the local share. */
  client: ScriptClient;
  keyPrefix: string;
  /** `'wait'`: calls wait for Redis; `'local'`: they use this process's share of the limits meanwhile. */
  mode: 'wait' | 'local';
  /** Whether Redis is up, shared with the ledger. */
  health: RedisHealth;
  /** A Redis call that takes longer counts as Redis being away. @default 5_000 */
  callTimeoutMs?: number;
}

export interface RedisHealth {
  /** Whether to try Redis now: always while it is up, once per `probeMs` while it is away. */
  shouldTry(): boolean;
  /** Milliseconds until the next try while Redis is away. */
  untilProbe(): number;
  up(): void;
  down(error: Error): void;
  /** A signal that aborts when Redis is found away (already aborted while it is away). */
  downSignal(): AbortSignal;
}

/**
 * Whether Redis answers, as the limiter and the ledger see it: the first failure after a success
 * reports an outage, the first success after failures reports the way back. While it is away,
 * calls go to Redis at most once per `probeMs` (callers in between wait or fall back).
 */
export function createRedisHealth(onChange: (up: boolean, error?: Error) => void, probeMs = 1_000): RedisHealth {
  let isDown = false;
  let nextProbe = 0;
  let downs = new AbortController();
  return {
    shouldTry: () => !isDown || Date.now() >= nextProbe,
    untilProbe: () => Math.max(10, nextProbe - Date.now()),
    up() {
      if (!isDown) return;
      isDown = false;
      downs = new AbortController();
      onChange(true);
    },
    down(error) {
      nextProbe = Date.now() + probeMs;
      if (isDown) return;
      isDown = true;
      downs.abort(error);
      onChange(false, error);
    },
    downSignal: () => downs.signal,
  };
}

/** How often a process re-registers itself, and how long a registration lives. */
const FLEET_BEAT_MS = 5_000;
const FLEET_TTL_MS = 15_000;

interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Bound a Redis call by the call timeout. @default true */
  timed?: boolean;
  /** Epoch ms after which a call waiting for Redis gives up. @default no limit */
  deadline?: number | undefined;
}

/**
 * Wraps the shared limiter with the outage policy. Redis down or restarting must never hang a
 * send forever nor drop one: with `'wait'` every call waits (as long as the caller's signal, that
 * is the message's retry deadline, allows) and resumes on reconnect; with `'local'` it falls back
 * to an in-process limiter holding this process's share of each limit (1 / the number of processes
 * seen sharing the prefix) and returns to Redis when it answers again.
 */
export function createFailoverLimiter(options: FailoverOptions): Limiter & { fleetSize(): number } {
  const callTimeoutMs = options.callTimeoutMs ?? 5_000;
  const { health } = options;
  const local = createMemoryLimiter();
  const id = randomUUID();
  const fleetKey = `${options.keyPrefix}:processes`;
  let fleet = 1;

  // Timed like any call: a Redis that stops answering is found away by this beat too, while every
  // send waits for a connection slot (an acquire, which is not timed).
  const beat = () =>
    observe(health, runScript(options.client, 'procs', [fleetKey], [id, FLEET_TTL_MS]), callTimeoutMs)
      .then((count) => {
        fleet = Math.max(1, Number(count));
      })
      .catch(() => {});
  void beat();
  const timer = setInterval(beat, FLEET_BEAT_MS);
  timer.unref();

  /**
   * Redis first; when it is away, the fallback (`'local'`) or another try once it may be back
   * (`'wait'`), until the signal or the deadline (epoch ms). `timed: false` lets a Redis call take
   * as long as it takes (waiting for a slot is long on purpose); Redis errors still fail over.
   */
  async function call<T>(primary: () => Promise<T>, fallback: () => Promise<T>, { signal, timed = true, deadline = Infinity }: CallOptions = {}): Promise<T> {
    for (;;) {
      if (health.shouldTry()) {
        try {
          return await observe(health, primary(), timed ? callTimeoutMs : Infinity, signal);
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
        }
      }
      if (options.mode === 'local') return fallback();
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('the message reached its retry deadline while Redis was away');
      await sleep(Math.min(health.untilProbe(), left), signal);
    }
  }

  return {
    kind: 'redis',
    fleetSize: () => fleet,
    lane(key: string, spec: LaneSpec): LaneLimiter {
      const shared = options.primary.lane(key, spec);
      let own: MemoryLaneLimiter | undefined;
      let ownShare = 0;
      // This process's share of the lane, sized by the fleet seen while Redis was up.
      const mine = () => {
        if (!own || ownShare !== fleet) {
          const previous = own;
          const part = share(spec, fleet);
          ownShare = fleet;
          own = local.lane(`${key}#${fleet}`, part);
          // What this process learned (slow-downs, pauses, a stop after bad credentials) carries
          // over to its new share. A memory lane applies a transition when called, so the state is
          // read and written here, before any send can book the new share.
          let learned: AdaptiveState | undefined;
          void previous?.update((state) => {
            learned = state;
            return null;
          });
          if (learned) void own.update(() => ({ ...learned!, connections: Math.min(learned!.connections, part.maxConnections) }));
          if (previous) own.setQuota(previous.quota());
        }
        return own;
      };

      // A quota across an outage. The share starts from its part of what Redis held at this
      // process's last booking there (`seen`), plus what it booked alone before and Redis does not
      // hold yet; back on Redis, what it booked alone is counted there. `accounted`: the part of
      // the share's counts that Redis holds (or that came from Redis). `seededFor`: the fleet size
      // the share was last started for while Redis is away (0 while Redis answers).
      const quotas = options.mode === 'local' && spec.windows.some(isQuotaWindow);
      let seen: QuotaCounts = [];
      let accounted: QuotaCounts = [];
      let seededFor = 0;
      let handing: Promise<void> | undefined;
      const alone = (): MemoryLaneLimiter => {
        const lane = mine();
        if (quotas && seededFor !== fleet) {
          const pending = subtract(lane.quota(), accounted);
          accounted = portion(seen, fleet);
          lane.setQuota(add(accounted, pending));
          seededFor = fleet;
        }
        return lane;
      };
      const noted = (reservation: Reservation): Reservation => {
        if (reservation.quota) seen = reservation.quota;
        seededFor = 0;
        return reservation;
      };
      /** Counts in Redis what the share booked alone, once per batch of such bookings; undefined when there is nothing to count. */
      const handBack = (): Promise<void> | undefined => {
        if (!own || handing) return handing;
        const now = own.quota();
        const sent = subtract(now, accounted);
        if (sent.every((buckets) => buckets.size === 0)) return undefined;
        handing = shared
          .addQuota(sent)
          .then((counts) => {
            seen = counts;
            accounted = now;
            seededFor = 0;
          })
          .finally(() => (handing = undefined));
        return handing;
      };
      const reserveShared = (signal: AbortSignal | undefined): Promise<Reservation> => {
        if (!quotas) return shared.reserve(signal);
        const back = handBack();
        return (back ? back.then(() => shared.reserve(signal)) : shared.reserve(signal)).then(noted);
      };

      return {
        key,
        reserve: (signal, deadline) => call(() => reserveShared(signal), () => alone().reserve(signal), { signal, deadline }),
        // Waiting for a slot is not timed; with 'local', it ends when Redis is found away (a beat or
        // another call timed out), and the share takes over. While Redis is away a slot comes from
        // the share at once: the timed calls (bookings, the beat) find out when Redis is back, and
        // an untimed wait for a slot must not be what probes it.
        acquire: (signal) => {
          const local = () => mine().acquire(signal).then((lease) => untilRedisIsBack(lease, health));
          if (options.mode !== 'local') return call<Lease>(() => shared.acquire(signal), local, { signal, timed: false });
          const away = health.downSignal();
          return away.aborted ? local() : call<Lease>(() => shared.acquire(anySignal(signal, away)), local, { signal, timed: false });
        },
        // Reads for stats() and a lane's wake-up, which keep what they knew when Redis does not
        // answer: one call's time, not the whole outage ('wait' would hold them until Redis is back).
        state: () => call(() => shared.state(), () => mine().state(), { deadline: Date.now() + callTimeoutMs }),
        update: async (transition: StateTransition) => {
          // The local copy learns every change, so that a fallback starts from the slowed-down pace.
          const mirrored = await mine().update(transition);
          return call(() => shared.update(transition), async () => mirrored);
        },
        held: () => call(() => shared.held(), () => mine().held(), { deadline: Date.now() + callTimeoutMs }),
      };
    },
    async close() {
      clearInterval(timer);
      await Promise.all([options.primary.close(), local.close()]);
    },
  };
}

/**
 * One process's share of a lane's limits when `processes` share it. A pace window's share may be a
 * fraction (its interval is `perMs / max`: 10/s over 16 processes is one send per 1.6 s each, 10/s
 * in all); a quota counts whole sends and a process needs one connection, so those are at least
 * one each: a fleet larger than a quota or a connection cap can exceed it by its size.
 */
export function share(spec: LaneSpec, processes: number): LaneSpec {
  return {
    windows: spec.windows.map((w) => {
      const part = w.max / processes;
      return { ...w, max: isQuotaWindow(w) ? Math.max(1, Math.floor(part)) : part, burst: Math.max(1, Math.min(w.burst, Math.floor(part))) };
    }),
    maxConnections: Math.max(1, Math.floor(spec.maxConnections / processes)),
  };
}

/** Per bucket, `a`'s count less `b`'s, where that is above 0. */
function subtract(a: QuotaCounts, b: QuotaCounts): QuotaCounts {
  return a.map((buckets, i) => {
    const left = new Map<number, number>();
    for (const [bucket, count] of buckets) {
      const n = count - (b[i]?.get(bucket) ?? 0);
      if (n > 0) left.set(bucket, n);
    }
    return left;
  });
}

/** Per bucket, `a`'s count plus `b`'s. */
function add(a: QuotaCounts, b: QuotaCounts): QuotaCounts {
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => {
    const sum = new Map(a[i]);
    for (const [bucket, count] of b[i] ?? []) sum.set(bucket, (sum.get(bucket) ?? 0) + count);
    return sum;
  });
}

/** One process's part of the fleet's counts: each bucket's count divided by the fleet's size, rounded up. */
function portion(counts: QuotaCounts, processes: number): QuotaCounts {
  return counts.map((buckets) => new Map([...buckets].map(([bucket, count]) => [bucket, Math.ceil(count / processes)])));
}

/**
 * Awaits a Redis call and tells `health` how it went: a success means Redis is up, a failure or a
 * call slower than `timeoutMs` that it is away (unless the caller's own signal ended it).
 */
/**
 * A slot of the local share, granted while Redis was away, counts as lost once Redis is back:
 * Redis does not count it, so its connection is given back after the send in progress and the
 * next one takes a slot in Redis, under the fleet's cap.
 */
function untilRedisIsBack(lease: Lease, health: RedisHealth): Lease {
  return {
    id: lease.id,
    get lost() {
      return lease.lost || !health.downSignal().aborted;
    },
    release: () => lease.release(),
  };
}

/** A signal that aborts with the first of `signal` (when given) and `other`. */
function anySignal(signal: AbortSignal | undefined, other: AbortSignal): AbortSignal {
  return signal ? AbortSignal.any([signal, other]) : other;
}

export async function observe<T>(health: RedisHealth | undefined, call: Promise<T>, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  try {
    const result = await (timeoutMs === Infinity ? call : withTimeout(call, timeoutMs));
    health?.up();
    return result;
  } catch (error) {
    if (!signal?.aborted) health?.down(error as Error);
    throw error;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms}ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
