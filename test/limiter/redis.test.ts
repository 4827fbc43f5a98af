import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LaneSpec, Lease, Limiter } from '../../src/limiter/limiter.js';
import { createRedisLimiter, laneKeys, type RedisLimiterOptions } from '../../src/limiter/redis.js';
import { loadScripts, SCRIPT_NAMES, type ScriptName } from '../../src/limiter/scripts.js';
import { freePort, redisAvailable, redisServerInstalled, startRedisServer, uniquePrefix, type RedisServer } from '../helpers/redis-server.js';
import { runLimiterContract } from './contract.js';

const PORT = 6379;
const HOST = '127.0.0.1';
const available = await redisAvailable(PORT, HOST);
const canSpawn = redisServerInstalled();

const spec = (max: number, perMs: number, maxConnections = 1): LaneSpec => ({ windows: [{ max, perMs, burst: 1 }], maxConnections });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Deletes every key under `prefix` (SCAN + DEL on each master). */
async function deleteKeys(client: Redis | Cluster, prefix: string): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      for (const key of keys) await node.del(key);
    } while (cursor !== '0');
  }
}

/** Every key under `prefix`, with its PTTL. */
async function keysWithTtl(client: Redis, prefix: string): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    for (const key of keys) result.set(key, await client.pttl(key));
  } while (cursor !== '0');
  return result;
}

/** Counts the limiter's script calls made through `client`, by script name. */
function countScriptCalls(client: Redis): Record<ScriptName, number> {
  const counts = Object.fromEntries(SCRIPT_NAMES.map((name) => [name, 0])) as Record<ScriptName, number>;
  const methods = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const script of Object.values(loadScripts())) {
    const original = methods[script.command]!;
    methods[script.command] = function (this: unknown, ...args: unknown[]) {
      counts[script.name]++;
      return original.apply(this, args);
    };
  }
  return counts;
}

describe.skipIf(!available)('redis limiter', () => {
  let admin: Redis;
  let prefix: string;
  const clients: Array<Redis | Cluster> = [];
  const limiters: Limiter[] = [];
  const leases: Lease[] = [];

  const connect = (options: Pick<RedisOptions, 'port' | 'lazyConnect' | 'enableOfflineQueue' | 'retryStrategy' | 'maxRetriesPerRequest'> = {}): Redis => {
    const client = new Redis({ host: HOST, port: PORT, ...options });
    clients.push(client);
    return client;
  };
  const limit = (client: Redis | Cluster, options: Partial<RedisLimiterOptions> = {}): Limiter => {
    const limiter = createRedisLimiter({ client, keyPrefix: prefix, ...options });
    limiters.push(limiter);
    return limiter;
  };

  beforeAll(() => {
    admin = new Redis({ host: HOST, port: PORT });
  });
  afterAll(async () => {
    await admin.quit();
  });

  const resetPrefix = (): void => {
    prefix = uniquePrefix();
  };
  const cleanup = async (): Promise<void> => {
    await Promise.allSettled(leases.splice(0).map((lease) => lease.release()));
    await Promise.allSettled(limiters.splice(0).map((limiter) => limiter.close()));
    await deleteKeys(admin, prefix);
    await Promise.allSettled(clients.splice(0).map((client) => (client.status === 'end' ? undefined : client.quit())));
  };

  runLimiterContract(
    'redis',
    async () => {
      resetPrefix();
      return createRedisLimiter({ client: connect(), keyPrefix: prefix });
    },
    cleanup,
  );

  describe('across processes', () => {
    afterEach(cleanup);

    it('holds one rate for two instances sharing a lane: 50/s ± 2', async () => {
      resetPrefix();
      const lanes = [limit(connect()), limit(connect())].map((limiter) => limiter.lane('shared', spec(50, 1_000)));
      const horizon = 2_000;
      const book = async (lane: (typeof lanes)[number]): Promise<number> => {
        let booked = 0;
        while ((await lane.reserve()).waitMs < horizon) booked++;
        return booked;
      };
      const started = performance.now();
      const counts = await Promise.all(lanes.map(book));
      const elapsed = performance.now() - started;
      // Slots booked within the horizon, over the time they span (the horizon from the last call).
      const rate = (counts[0]! + counts[1]!) / ((horizon + elapsed) / 1_000);
      expect(counts[0]).toBeGreaterThan(0);
      expect(counts[1]).toBeGreaterThan(0);
      expect(rate).toBeGreaterThanOrEqual(48);
      expect(rate).toBeLessThanOrEqual(52);
    });

    it('applies concurrent updates from two instances atomically', async () => {
      resetPrefix();
      const lanes = [limit(connect()), limit(connect())].map((limiter) => limiter.lane('cas', spec(10, 1_000, 10)));
      await Promise.all(lanes.flatMap((lane) => Array.from({ length: 10 }, () => lane.update((s) => ({ ...s, connections: s.connections - 0.01 })))));
      expect((await lanes[0]!.state()).connections).toBeCloseTo(9.8, 9);
    });

    it('caps connections at the configured maxConnections when the stored state was written under a higher one', async () => {
      resetPrefix();
      // A deploy with maxConnections 10 pauses the lane: every field of its state is stored, connections 10 too.
      const before = limit(connect()).lane('lowered', spec(10, 1_000, 10));
      await before.update((state, now) => ({ ...state, pausedUntil: now + 1_000, pauseReason: 'retry-after' }));
      // The next deploy says 3.
      const after = limit(connect()).lane('lowered', spec(10, 1_000, 3));
      expect((await after.state()).connections).toBe(3);
      const leases = await Promise.all([1, 2, 3].map(() => after.acquire()));
      const fourth = new AbortController();
      const waiting = after.acquire(fourth.signal);
      await sleep(300);
      fourth.abort(new Error('still waiting'));
      await expect(waiting).rejects.toThrow('still waiting');
      expect(await after.held()).toBe(3);
      await Promise.all(leases.map((lease) => lease.release()));
    });

    it('wakes a waiter of another instance through pub/sub when a slot is released or the cap rises', async () => {
      resetPrefix();
      const [a, b] = [limit(connect()), limit(connect())].map((limiter) => limiter.lane('wake', spec(10, 1_000, 2)));
      // Cut to one connection (as a refusal does), so that raising it back to 2 below frees a slot.
      await a!.update((state) => ({ ...state, connections: 1 }));
      const held = await a!.acquire();
      // Default leaseMs 30 s: the fallback re-check runs every second, so a grant within 200 ms is a wake-up.
      let started = performance.now();
      const waiting = b!.acquire();
      await sleep(100);
      await held.release();
      leases.push(await waiting);
      expect(performance.now() - started).toBeLessThan(300);

      started = performance.now();
      const second = b!.acquire();
      await sleep(100);
      await a!.update((state) => ({ ...state, connections: 2 }));
      leases.push(await second);
      expect(performance.now() - started).toBeLessThan(300);
    });

    it('gives the slot of an instance that died holding it to a waiter of another within leaseMs', async () => {
      resetPrefix();
      const leaseMs = 1_000;
      const doomedClient = connect();
      const doomed = limit(doomedClient, { leaseMs }).lane('dead', spec(10, 1_000, 1));
      const survivor = limit(connect(), { leaseMs }).lane('dead', spec(10, 1_000, 1));
      await doomed.acquire();
      // Dies without releasing: its renew timer keeps firing into a closed connection.
      doomedClient.disconnect();
      const started = performance.now();
      leases.push(await survivor.acquire());
      const waited = performance.now() - started;
      // The lease was renewed at most leaseMs / 3 before the death; the survivor re-checks every leaseMs / 4.
      expect(waited).toBeGreaterThan(leaseMs * (2 / 3) - 50);
      expect(waited).toBeLessThan(leaseMs + leaseMs / 4 + 100);
      expect(await survivor.held()).toBe(1);
    });
  });

  describe('keys', () => {
    afterEach(cleanup);

    it('puts every key of a lane under the prefix with the lane hash tag, and gives each a TTL', async () => {
      resetPrefix();
      const lane = limit(connect()).lane('smtp.example.com', spec(10, 1_000, 2));
      await lane.reserve();
      leases.push(await lane.acquire());
      await lane.update((state, now) => ({ ...state, pausedUntil: now + 60_000, pauseReason: 'quota' }));
      const keys = laneKeys(prefix, 'smtp.example.com');
      expect(keys).toEqual({
        tat: `${prefix}:{lane:smtp.example.com}:tat`,
        state: `${prefix}:{lane:smtp.example.com}:state`,
        leases: `${prefix}:{lane:smtp.example.com}:leases`,
        wake: `${prefix}:{lane:smtp.example.com}:wake`,
      });
      const ttls = await keysWithTtl(admin, prefix);
      expect([...ttls.keys()].sort()).toEqual([keys.leases, keys.state, keys.tat].sort());
      for (const [key, ttl] of ttls) expect(ttl, key).toBeGreaterThan(0);
      expect(ttls.get(keys.state)).toBeGreaterThan(24 * 60 * 60 * 1000 - 5_000);
    });

    it('keeps the state key alive past a pause longer than keyIdleMs', async () => {
      resetPrefix();
      const lane = limit(connect(), { keyIdleMs: 10_000 }).lane('long-pause', spec(10, 1_000));
      await lane.update((state, now) => ({ ...state, pausedUntil: now + 60_000, pauseReason: 'quota' }));
      const ttl = await admin.pttl(laneKeys(prefix, 'long-pause').state);
      expect(ttl).toBeGreaterThan(60_000);
      expect(ttl).toBeLessThanOrEqual(70_000);
    });

    it('writes nothing when a transition returns null', async () => {
      resetPrefix();
      const lane = limit(connect()).lane('untouched', spec(10, 1_000));
      await lane.update(() => null);
      expect(await admin.exists(laneKeys(prefix, 'untouched').state)).toBe(0);
    });

    it('marks a lease lost when Redis forgets it, so that its connection closes', async () => {
      resetPrefix();
      const lane = limit(connect(), { leaseMs: 600 }).lane('forgotten', spec(10, 1_000, 2));
      const lease = await lane.acquire();
      leases.push(lease);
      expect(lease.lost).toBe(false);
      await admin.del(laneKeys(prefix, 'forgotten').leases); // as a Redis restarted empty would
      await sleep(700); // a renewal (every leaseMs / 3) finds it gone
      expect(lease.lost).toBe(true);
    });

    it('leaves no lease behind on close', async () => {
      resetPrefix();
      const limiter = limit(connect());
      const lane = limiter.lane('closing', spec(10, 1_000, 3));
      await lane.acquire();
      await lane.acquire();
      await limiter.close();
      expect(await admin.exists(laneKeys(prefix, 'closing').leases)).toBe(0);
    });
  });

  describe('calls', () => {
    afterEach(cleanup);

    it('makes one script call per reservation, grant and release, two per update, and none while a waiter waits', async () => {
      resetPrefix();
      const client = connect();
      const lane = limit(client).lane('calls', spec(10, 1_000, 1));
      const calls = countScriptCalls(client);
      await lane.reserve();
      expect(calls.reserve).toBe(1);
      const lease = await lane.acquire();
      expect(calls.acquire).toBe(1);
      await lane.update((state) => ({ ...state, rateFactor: 0.9 }));
      expect(calls['state-get'] + calls['state-cas']).toBe(2);

      // Let the subscriber connection come up: its subscription wakes the lane once, to catch a release it missed.
      await sleep(200);
      const waiting = lane.acquire();
      waiting.catch(() => {});
      await sleep(700);
      // One refused attempt, then silence until a wake-up (the fallback re-check comes after 1 s).
      expect(calls.acquire).toBe(2);
      await lease.release();
      leases.push(await waiting);
      expect(calls.release).toBe(1);
      expect(calls.acquire).toBe(3);
    });

    it('makes one acquire call per release when local waiters queue for a full lane', async () => {
      resetPrefix();
      const client = connect();
      const lane = limit(client).lane('queue', spec(10, 1_000, 1));
      let lease = await lane.acquire();
      const waiting = [lane.acquire(), lane.acquire(), lane.acquire()];
      for (const promise of waiting) promise.catch(() => {});
      await sleep(200);
      const calls = countScriptCalls(client);
      for (const next of waiting) {
        await lease.release();
        lease = await next;
      }
      leases.push(lease);
      expect(calls.acquire).toBe(3);
    });
  });

  describe('scripts', () => {
    afterEach(cleanup);

    it('compiles every script on Redis', async () => {
      resetPrefix();
      for (const script of Object.values(loadScripts())) {
        await expect(admin.script('LOAD', script.lua)).resolves.toMatch(/^[0-9a-f]{40}$/);
      }
    });

    it('keeps working after SCRIPT FLUSH (ioredis answers NOSCRIPT with EVAL)', async () => {
      resetPrefix();
      const client = connect();
      const lane = limit(client).lane('flush', spec(10, 1_000));
      expect((await lane.reserve()).waitMs).toBe(0);
      await client.script('FLUSH');
      const next = await lane.reserve();
      expect(next.waitMs).toBeGreaterThan(80);
    });
  });

  describe('errors', () => {
    afterEach(cleanup);

    it('rejects at once when the client cannot send and has no offline queue', async () => {
      resetPrefix();
      const port = await freePort();
      const client = connect({ port, lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
      client.on('error', () => {});
      const lane = limit(client).lane('down', spec(10, 1_000));
      await expect(lane.reserve()).rejects.toThrow(/enableOfflineQueue/);
      await expect(lane.acquire()).rejects.toThrow(/enableOfflineQueue/);
      await expect(lane.update((state) => ({ ...state, rateFactor: 0.5 }))).rejects.toThrow(/enableOfflineQueue/);
      await expect(lane.held()).rejects.toThrow(/enableOfflineQueue/);
    });

    it('rejects after maxRetriesPerRequest reconnections when the offline queue holds the call', async () => {
      resetPrefix();
      const port = await freePort();
      const client = connect({ port, maxRetriesPerRequest: 1, retryStrategy: () => 20 });
      client.on('error', () => {});
      const lane = limit(client).lane('down', spec(10, 1_000));
      await expect(lane.reserve()).rejects.toThrow(/max retries per request/i);
    });

    it('names the bad option', () => {
      expect(() => createRedisLimiter({ client: admin, keyPrefix: '' })).toThrow(/keyPrefix/);
      expect(() => createRedisLimiter({ client: admin, keyPrefix: 'x', leaseMs: 1_000, renewEveryMs: 2_000 })).toThrow(/renewEveryMs/);
    });
  });
});

describe.skipIf(!canSpawn)('redis limiter on a Redis that restarts', () => {
  let server: RedisServer;
  let client: Redis | undefined;
  let limiter: Limiter | undefined;

  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterEach(async () => {
    await limiter?.close();
    await client?.quit().catch(() => {});
    limiter = undefined;
    client = undefined;
  });
  afterAll(async () => {
    await server.stop();
  });

  it('keeps data across a restart with keepData (the helper)', async () => {
    client = new Redis(server.port, HOST);
    await client.set('kept', '1');
    await server.restart({ keepData: true });
    expect(await client.get('kept')).toBe('1');
  });

  it('keeps working on a Redis restarted empty: scripts reloaded, lost state back to defaults', async () => {
    client = new Redis(server.port, HOST);
    limiter = createRedisLimiter({ client, keyPrefix: uniquePrefix() });
    const lane = limiter.lane('restart', spec(10, 1_000, 2));
    await lane.reserve();
    expect((await lane.reserve()).waitMs).toBeGreaterThan(80);
    await lane.update((state) => ({ ...state, rateFactor: 0.5, connections: 1 }));
    const lease = await lane.acquire();
    const pid = server.pid;

    await server.restart({ keepData: false });
    expect(server.pid).not.toBe(pid);

    // Sent once ioredis has reconnected: EVAL first on the new connection, so no script is missing.
    expect((await lane.reserve()).waitMs).toBe(0);
    expect((await lane.state()).rateFactor).toBe(1);
    expect(await lane.held()).toBe(0);
    const again = await lane.acquire();
    const more = await lane.acquire();
    expect(await lane.held()).toBe(2);
    await Promise.all([lease.release(), again.release(), more.release()]);
    expect(await lane.held()).toBe(0);
  });
});

describe.skipIf(!canSpawn)('redis limiter on a Redis Cluster', () => {
  let server: RedisServer;
  let cluster: Cluster;
  let prefix: string;
  const clusters: Cluster[] = [];

  beforeAll(async () => {
    server = await startRedisServer({ cluster: true });
    cluster = new Cluster([{ host: HOST, port: server.port }]);
  });
  afterAll(async () => {
    await cluster.quit();
    await server.stop();
  });

  runLimiterContract(
    'redis cluster',
    async () => {
      prefix = uniquePrefix();
      const client = new Cluster([{ host: HOST, port: server.port }]);
      clusters.push(client);
      return createRedisLimiter({ client, keyPrefix: prefix });
    },
    async () => {
      await deleteKeys(cluster, prefix);
      await Promise.allSettled(clusters.splice(0).map((client) => client.quit()));
    },
  );
});
