import { randomUUID } from 'node:crypto';
import { ConfigError, RedisUnavailableError, type ConfigIssue } from '../errors.js';
import { initialState, type AdaptiveState, type StateTransition } from '../lanes/controller.js';
import { isQuotaWindow, QUOTA_BUCKETS, quotaBucketMs } from './gcra.js';
import type { LaneLimiter, LaneSpec, Lease, Limiter, QuotaCounts, Reservation } from './limiter.js';
import { defineScripts, runScript, type ScriptClient } from './scripts.js';

/**
 * The subscriber connection the limiter opens with `client.duplicate()` to hear that a
 * connection slot came free. An ioredis `Redis` or `Cluster` fits.
 */
export interface RedisSubscriber {
  readonly status: string;
  subscribe(...channels: string[]): Promise<unknown>;
  // `any[]`, as EventEmitter declares listeners, so that ioredis clients are assignable.
  on(event: 'message' | 'ready' | 'close' | 'error', listener: (...args: any[]) => void): unknown;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/**
 * What the limiter needs of a Redis client: `defineCommand` for its scripts and `duplicate` for
 * its subscriber connection. An ioredis `Redis` or `Cluster` instance fits; the limiter never
 * quits it.
 */
export type RedisLike = ScriptClient & { duplicate(): RedisSubscriber };

export interface RedisLimiterOptions {
  /**
   * The client to run the limiter's scripts on. It stays the caller's: `close()` does not quit it.
   *
   * Every method rejects with the client's error when Redis fails. While the client is
   * disconnected, ioredis' offline queue (`enableOfflineQueue`, on by default) holds each call
   * until it reconnects, and rejects it after `maxRetriesPerRequest` reconnection attempts (20 by
   * default, about a minute with the default retry strategy; never with `null`). With
   * `enableOfflineQueue: false` calls reject at once; `commandTimeout` bounds every call.
   */
  client: RedisLike;
  /**
   * Prefix of every key and channel, followed by `:`. Processes that share a prefix share limits.
   * @example 'mailpacer'
   */
  keyPrefix: string;
  /**
   * How long a connection slot stays held without renewal: a process that dies holding slots
   * gives them back within this time.
   * @default 30_000
   */
  leaseMs?: number;
  /** How often this process renews the slots it holds (one call per lane per tick). @default leaseMs / 3 */
  renewEveryMs?: number;
  /**
   * How long a lane's adaptive state outlives its last write (longer when a pause lasts longer).
   * After that the lane starts again from the configured limits.
   * @default 86_400_000 (24h)
   */
  keyIdleMs?: number;
  /**
   * Return the quota windows' counts with each booking (`Reservation.quota`), for a process that
   * goes on alone while Redis is away; without it the script does not build them.
   * @default false
   */
  quotaCounts?: boolean;
}

const DEFAULT_LEASE_MS = 30_000;
const DEFAULT_KEY_IDLE_MS = 24 * 60 * 60 * 1000;
/** The TAT hash lives this long past its latest TAT (a TAT in the past means nothing, so this is slack only). */
const TAT_MARGIN_MS = 1_000;
/** Compare-and-set attempts of one `update()` before giving up; writes of one process are serialized, so only other processes conflict. */
const CAS_ATTEMPTS = 10;
/** `close()` waits this long at most for the release of held slots (they expire anyway). */
const CLOSE_TIMEOUT_MS = 2_000;

const NUMBER_FIELDS = ['rateFactor', 'connections', 'pausedUntil', 'lastDecreaseAt', 'ceiling'] as const;
const TEXT_FIELDS = ['pauseReason', 'stopped'] as const;
/** The state fields `reserve-2.lua` returns after `waitMs`, `now` and `quota`, in its order. */
const RESERVE_FIELDS = ['rateFactor', 'connections', 'pausedUntil', 'pauseReason', 'stopped', 'lastDecreaseAt'] as const;

/**
 * Lane limits shared through Redis by every process that uses the same `keyPrefix`: GCRA rate
 * windows in reserve mode, a lease semaphore for connections, and the adaptive state, each
 * kept atomic by a Lua script in `lua/`.
 *
 * Keys of a lane (one hash tag per lane, so a lane lives in one Cluster slot):
 * `<prefix>:{lane:<key>}:tat` (hash), `:state` (hash), `:leases` (sorted set), and the pub/sub
 * channel `:wake`. Every key expires when idle.
 *
 * @example
 * const limiter = createRedisLimiter({ client: new Redis(process.env.REDIS_URL), keyPrefix: 'mailpacer' });
 */
export function createRedisLimiter(options: RedisLimiterOptions): RedisLimiter {
  const settings = resolveOptions(options);
  defineScripts(settings.client);
  const core = new RedisLimiterCore(settings);
  return {
    kind: 'redis',
    lane: (key, spec) => core.lane(key, spec),
    close: () => core.close(),
  };
}

/** The Redis limiter, whose lanes also take quota bookings made elsewhere. */
export interface RedisLimiter extends Limiter {
  lane(key: string, spec: LaneSpec): RedisLaneLimiter;
}

export interface RedisLaneLimiter extends LaneLimiter {
  /**
   * Counts sends booked elsewhere (by one process alone while Redis was away) into the lane's
   * quota windows, and returns the lane's quota counts after that, every process's together.
   */
  addQuota(sent: QuotaCounts): Promise<QuotaCounts>;
}

interface Settings {
  client: RedisLike;
  keyPrefix: string;
  leaseMs: number;
  renewEveryMs: number;
  keyIdleMs: number;
  quotaCounts: boolean;
  /** Re-check interval of a waiting acquirer, for slots freed by expiry (no release, so no message). */
  recheckMs: number;
}

function resolveOptions(options: RedisLimiterOptions): Settings {
  const issues: ConfigIssue[] = [];
  const client = options.client as Partial<RedisLike> | undefined;
  if (typeof client?.defineCommand !== 'function' || typeof client.duplicate !== 'function') {
    issues.push({ path: 'client', message: 'expected an ioredis Redis or Cluster instance' });
  }
  if (typeof options.keyPrefix !== 'string' || options.keyPrefix === '') {
    issues.push({ path: 'keyPrefix', message: 'expected a non-empty string' });
  }
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const renewEveryMs = options.renewEveryMs ?? leaseMs / 3;
  const keyIdleMs = options.keyIdleMs ?? DEFAULT_KEY_IDLE_MS;
  if (!(Number.isFinite(leaseMs) && leaseMs > 0)) issues.push({ path: 'leaseMs', message: 'expected a positive number of milliseconds' });
  if (!(Number.isFinite(renewEveryMs) && renewEveryMs > 0 && renewEveryMs < leaseMs)) {
    issues.push({ path: 'renewEveryMs', message: 'expected a positive number of milliseconds below leaseMs' });
  }
  if (!(Number.isFinite(keyIdleMs) && keyIdleMs > 0)) issues.push({ path: 'keyIdleMs', message: 'expected a positive number of milliseconds' });
  if (issues.length > 0) throw new ConfigError(issues);
  return {
    client: options.client,
    keyPrefix: options.keyPrefix,
    leaseMs,
    renewEveryMs,
    keyIdleMs,
    quotaCounts: options.quotaCounts ?? false,
    recheckMs: Math.min(leaseMs / 4, 1_000),
  };
}

/** Quota counts as the scripts return them: `<window>:<bucket>:<count>` joined by `,`. */
function parseQuota(text: string, windows: number): QuotaCounts {
  const counts = Array.from({ length: windows }, () => new Map<number, number>());
  for (const entry of text === '' ? [] : text.split(',')) {
    const [window, bucket, count] = entry.split(':').map(Number);
    counts[window!]?.set(bucket!, count!);
  }
  return counts;
}

interface LaneKeys {
  tat: string;
  state: string;
  leases: string;
  wake: string;
}

export function laneKeys(keyPrefix: string, key: string): LaneKeys {
  const base = `${keyPrefix}:{lane:${key}}`;
  return { tat: `${base}:tat`, state: `${base}:state`, leases: `${base}:leases`, wake: `${base}:wake` };
}

/** What the lanes of one limiter share: settings, the renew timer and the subscriber connection. */
class RedisLimiterCore {
  readonly settings: Settings;
  closed = false;
  #lanes = new Map<string, RedisLane>();
  #channels = new Map<string, RedisLane>();
  #live = new Set<string>();
  #subscriber: RedisSubscriber | undefined;
  #renewTimer: NodeJS.Timeout;

  constructor(settings: Settings) {
    this.settings = settings;
    this.#renewTimer = setInterval(() => {
      for (const lane of this.#lanes.values()) void lane.renew();
    }, settings.renewEveryMs);
    this.#renewTimer.unref();
  }

  lane(key: string, spec: LaneSpec): RedisLane {
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = new RedisLane(key, spec, this);
      this.#lanes.set(key, lane);
    }
    return lane;
  }

  /** Subscribes to the lane's wake channel (once), opening the subscriber connection on first use. */
  watch(lane: RedisLane): void {
    if (this.closed || this.#channels.has(lane.keys.wake)) return;
    this.#channels.set(lane.keys.wake, lane);
    const subscriber = this.#ensureSubscriber();
    // Not ready yet: the 'ready' handler subscribes every channel.
    if (subscriber.status === 'ready') this.#subscribe([lane.keys.wake]);
  }

  /** Whether a release or a raised cap on this channel will reach the waiters through pub/sub. */
  isLive(channel: string): boolean {
    return this.#live.has(channel);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.#renewTimer);
    await withTimeout(Promise.allSettled([...this.#lanes.values()].map((lane) => lane.close())), CLOSE_TIMEOUT_MS);
    this.#lanes.clear();
    this.#channels.clear();
    this.#live.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber) {
      const quit = await withTimeout(
        subscriber.quit().then(
          () => true,
          () => false,
        ),
        CLOSE_TIMEOUT_MS,
      );
      if (quit !== true) subscriber.disconnect();
    }
  }

  #ensureSubscriber(): RedisSubscriber {
    if (this.#subscriber) return this.#subscriber;
    const subscriber = this.settings.client.duplicate();
    subscriber.on('message', (channel: string) => this.#channels.get(channel)?.wake());
    // On every (re)connection: subscribe again, and wake every lane, since messages published
    // while this connection was down are lost.
    subscriber.on('ready', () => this.#subscribe([...this.#channels.keys()]));
    subscriber.on('close', () => this.#live.clear());
    // Connection errors reach callers through the commands on the main client; here they would
    // only be logged by ioredis as unhandled. Waiters fall back to the re-check timer meanwhile.
    subscriber.on('error', () => {});
    this.#subscriber = subscriber;
    return subscriber;
  }

  #subscribe(channels: string[]): void {
    const subscriber = this.#subscriber;
    if (!subscriber || channels.length === 0) return;
    subscriber.subscribe(...channels).then(
      () => {
        for (const channel of channels) {
          this.#live.add(channel);
          // A slot freed before the subscription took effect sent a message nobody heard.
          this.#channels.get(channel)?.wake();
        }
      },
      () => {},
    );
  }
}

interface Waiter {
  resolve: (lease: Lease) => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

interface Snapshot {
  now: number;
  version: string;
  state: AdaptiveState;
}

class RedisLane implements RedisLaneLimiter {
  readonly key: string;
  readonly keys: LaneKeys;
  #spec: LaneSpec;
  #core: RedisLimiterCore;
  #client: RedisLike;
  /** Leases this process holds on the lane: renewed every tick, released on close. */
  #holders = new Set<string>();
  /** Local acquirers, served first come, first served. */
  #waiters: Waiter[] = [];
  #pumping = false;
  /** Counts wake-ups, so that one arriving while an acquire call is in flight is not missed. */
  #wakes = 0;
  #onWake: (() => void) | undefined;
  #renewing = false;
  /** The update in progress: updates of one process go one at a time, so they never conflict with each other. */
  #updates: Promise<unknown> = Promise.resolve();

  constructor(key: string, spec: LaneSpec, core: RedisLimiterCore) {
    this.key = key;
    this.keys = laneKeys(core.settings.keyPrefix, key);
    this.#spec = spec;
    this.#core = core;
    this.#client = core.settings.client;
  }

  async reserve(): Promise<Reservation> {
    // Per window: kind, max, perMs, then burst (GCRA) or the bucket count (quota); see reserve-2.lua.
    const windows = this.#spec.windows.flatMap((window) =>
      isQuotaWindow(window) ? ['quota', window.max, window.perMs, QUOTA_BUCKETS] : ['gcra', window.max, window.perMs, window.burst],
    );
    const reply = asArray(await runScript(this.#client, 'reserve', [this.keys.tat, this.keys.state], [TAT_MARGIN_MS, this.#core.settings.quotaCounts ? 1 : 0, ...windows]));
    const hash = new Map(RESERVE_FIELDS.map((field, i) => [field, reply[i + 3]]));
    const reservation: Reservation = { waitMs: Number(reply[0]), state: this.#toState(hash) };
    if (reply[2]) reservation.quota = parseQuota(String(reply[2]), this.#spec.windows.length);
    return reservation;
  }

  async addQuota(sent: QuotaCounts): Promise<QuotaCounts> {
    const args: (string | number)[] = [TAT_MARGIN_MS];
    sent.forEach((buckets, i) => {
      const window = this.#spec.windows[i];
      if (!window || !isQuotaWindow(window)) return;
      const bucketMs = quotaBucketMs(window);
      for (const [bucket, count] of buckets) if (count > 0) args.push(`q${i}:${bucket}`, count, (bucket + QUOTA_BUCKETS + 1) * bucketMs);
    });
    const reply = args.length > 1 ? await runScript(this.#client, 'quota-add', [this.keys.tat], args) : '';
    return parseQuota(String(reply), this.#spec.windows.length);
  }

  acquire(signal?: AbortSignal): Promise<Lease> {
    if (this.#core.closed) return Promise.reject(new Error('limiter closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          // Let an idle pump stop waiting now rather than at its next re-check.
          if (this.#waiters.length === 0) this.wake();
          reject(signal?.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#core.watch(this);
      this.#pump();
    });
  }

  async state(): Promise<AdaptiveState> {
    return (await this.#read()).state;
  }

  update(transition: StateTransition): Promise<AdaptiveState> {
    const result = this.#updates.then(() => this.#update(transition));
    this.#updates = result.catch(() => undefined);
    return result;
  }

  async held(): Promise<number> {
    return Number(await runScript(this.#client, 'held', [this.keys.leases], []));
  }

  /** Wakes the local waiters to try again: a slot may be free. */
  wake(): void {
    this.#wakes++;
    const onWake = this.#onWake;
    this.#onWake = undefined;
    onWake?.();
  }

  /** Extends every lease this process holds on the lane. Errors are left to the next tick: a lease outlives two missed renewals. */
  async renew(): Promise<void> {
    if (this.#renewing || this.#holders.size === 0) return;
    this.#renewing = true;
    try {
      const lost = asArray(await runScript(this.#client, 'renew', [this.keys.leases], [this.#core.settings.leaseMs, ...this.#holders]));
      for (const id of lost) this.#holders.delete(String(id));
    } catch {
      // Redis unreachable: try again next tick.
    } finally {
      this.#renewing = false;
    }
  }

  /** Rejects the local waiters and gives back the slots this process holds. */
  async close(): Promise<void> {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new Error('limiter closed'));
    }
    this.wake();
    const ids = [...this.#holders];
    this.#holders.clear();
    if (ids.length > 0) await runScript(this.#client, 'release', [this.keys.leases], [this.keys.wake, ...ids]);
  }

  /** Serves local waiters one at a time: one acquire call per attempt, then waits for a wake-up or the re-check timer. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    void this.#drain().finally(() => {
      this.#pumping = false;
      // A waiter may have arrived between the drain's last check and now.
      if (this.#waiters.length > 0 && !this.#core.closed) this.#pump();
    });
  }

  async #drain(): Promise<void> {
    const { leaseMs, recheckMs } = this.#core.settings;
    while (this.#waiters.length > 0 && !this.#core.closed) {
      const wakes = this.#wakes;
      const id = randomUUID();
      let granted: boolean;
      let full: boolean;
      try {
        const reply = asArray(await runScript(this.#client, 'acquire', [this.keys.leases, this.keys.state], [id, leaseMs, this.#spec.maxConnections]));
        granted = Number(reply[0]) === 1;
        full = Number(reply[1]) >= Number(reply[2]);
      } catch (error) {
        // Redis failed: every waiter would fail the same way, and the caller decides what an outage means.
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const waiter of waiters) {
          waiter.signal?.removeEventListener('abort', waiter.onAbort);
          waiter.reject(error);
        }
        return;
      }
      if (granted) {
        this.#holders.add(id);
        const waiter = this.#waiters.shift();
        if (!waiter || this.#core.closed) {
          // The waiter aborted (or the limiter closed) while the call was in flight: do not keep the slot.
          await this.#lease(id).release().catch(() => {});
          continue;
        }
        waiter.signal?.removeEventListener('abort', waiter.onAbort);
        waiter.resolve(this.#lease(id));
        // That was the last free slot: the next waiter would only be refused, so wait for a wake-up.
        if (!full) continue;
      }
      if (this.#wakes !== wakes || this.#waiters.length === 0) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#onWake = undefined;
          resolve();
        }, recheckMs);
        this.#onWake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  #lease(id: string): Lease {
    const holders = this.#holders;
    return {
      id,
      get lost() {
        return !holders.has(id);
      },
      release: async () => {
        // Forget it first: a lease that failed to release is no longer renewed, so it expires.
        if (!this.#holders.delete(id)) return;
        try {
          await runScript(this.#client, 'release', [this.keys.leases], [this.keys.wake, id]);
        } finally {
          if (!this.#core.isLive(this.keys.wake)) this.wake();
        }
      },
    };
  }

  async #update(transition: StateTransition): Promise<AdaptiveState> {
    const { keyIdleMs } = this.#core.settings;
    let snapshot = await this.#read();
    for (let attempt = 1; ; attempt++) {
      const wanted = transition(snapshot.state, snapshot.now);
      if (wanted === null) return snapshot.state;
      // The configured cap bounds what is stored, as it bounds what is read.
      const next = wanted.connections > this.#spec.maxConnections ? { ...wanted, connections: this.#spec.maxConnections } : wanted;
      const raised = capOf(next) > capOf(snapshot.state);
      // The state must outlive its pause, then stay for keyIdleMs.
      const ttlMs = Math.max(keyIdleMs, Math.ceil(next.pausedUntil - snapshot.now) + keyIdleMs);
      const set: string[] = [];
      const remove: string[] = [];
      for (const field of NUMBER_FIELDS) set.push(field, String(next[field]));
      for (const field of TEXT_FIELDS) {
        const value = next[field];
        if (value === null) remove.push(field);
        else set.push(field, value);
      }
      const write = [snapshot.version, randomUUID(), ttlMs, this.keys.wake, raised ? '1' : '0', set.length / 2, ...set, ...remove];
      const reply = asArray(await runScript(this.#client, 'state-cas', [this.keys.state], write));
      if (Number(reply[0]) === 1) {
        if (raised && !this.#core.isLive(this.keys.wake)) this.wake();
        return next;
      }
      if (attempt >= CAS_ATTEMPTS) {
        throw new RedisUnavailableError(`lane ${this.key}: the adaptive state changed under ${CAS_ATTEMPTS} attempts to update it in a row`);
      }
      snapshot = this.#snapshot(reply.slice(1));
      await delay(Math.random() * attempt);
    }
  }

  async #read(): Promise<Snapshot> {
    return this.#snapshot(asArray(await runScript(this.#client, 'state-get', [this.keys.state], [])));
  }

  /** Parses `{ now, field1, value1, ... }` as state-get and a conflicting state-cas return it. */
  #snapshot(reply: readonly unknown[]): Snapshot {
    const hash = new Map<string, unknown>();
    for (let i = 1; i + 1 < reply.length; i += 2) hash.set(String(reply[i]), reply[i + 1]);
    const version = hash.get('version');
    return { now: Number(reply[0]), version: typeof version === 'string' ? version : '0', state: this.#toState(hash) };
  }

  /** The stored fields over the lane's initial state: a field that is missing (Redis restarted empty, key expired) takes its default. */
  #toState(hash: ReadonlyMap<string, unknown>): AdaptiveState {
    const state = initialState(this.#spec);
    for (const field of NUMBER_FIELDS) {
      const value = hash.get(field);
      const number = typeof value === 'string' && value !== '' ? Number(value) : Number.NaN;
      if (!Number.isNaN(number)) state[field] = number;
    }
    for (const field of TEXT_FIELDS) {
      const value = hash.get(field);
      if (typeof value === 'string') state[field] = value;
    }
    // Stored under a higher maxConnections (before a deploy lowered it): the configured cap bounds it.
    if (state.connections > this.#spec.maxConnections) state.connections = this.#spec.maxConnections;
    return state;
  }
}

/** The connection cap an acquire enforces for a state (as `acquire-2.lua` and the memory limiter compute it). */
function capOf(state: AdaptiveState): number {
  return Math.max(1, Math.floor(state.connections));
}

function asArray(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) throw new RedisUnavailableError(`unexpected reply from a limiter script: ${String(reply)}`);
  return reply;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the promise's value, or with undefined after `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
