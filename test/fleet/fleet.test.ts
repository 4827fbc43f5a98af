import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { startRedisCluster } from '../helpers/cluster.js';
import { fleetMessageId, startFleetChild, type FleetChild, type FleetChildConfig } from '../helpers/fleet-child.js';
import { redisAvailable, redisServerInstalled, startRedisServer, uniquePrefix, type RedisServer } from '../helpers/redis-server.js';

/**
 * The fleet: several Node processes with one provider config and one key prefix, sending to one
 * SMTP server. The server's records are the judge: what the receiver saw is what the limits are
 * for. Real Redis, real SMTP server, real child processes.
 */

/** The default lease of a connection slot (`createMailer` does not expose `leaseMs`; see `src/limiter/redis.ts`). */
const LEASE_MS = 30_000;
/** How long a waiting acquirer may take to notice an expired lease: its re-check interval (1 s), plus slack for a busy machine. */
const RECHECK_MARGIN_MS = 2_000;

const canSpawnRedis = redisServerInstalled();
const sharedRedis = await redisAvailable();
if (!canSpawnRedis) console.warn('test/fleet: redis-server is not installed: the Redis Cluster test is SKIPPED');
if (!sharedRedis && !canSpawnRedis) console.warn('test/fleet: no Redis at 127.0.0.1:6379 and no redis-server to start one: the fleet tests are SKIPPED');

let redisUrl = 'redis://127.0.0.1:6379';
let ownRedis: RedisServer | undefined;
let admin: Redis;

beforeAll(async () => {
  if (!sharedRedis && canSpawnRedis) {
    ownRedis = await startRedisServer();
    redisUrl = ownRedis.url;
  }
  admin = new Redis(redisUrl, { lazyConnect: true });
});

afterAll(async () => {
  await admin?.quit().catch(() => admin.disconnect());
  await ownRedis?.stop();
});

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

async function smtp(options: Parameters<typeof startThrottlingSmtpServer>[0]): Promise<ThrottlingSmtpServer> {
  const srv = await startThrottlingSmtpServer(options);
  cleanup.push(() => srv.close());
  return srv;
}

function child(config: FleetChildConfig): FleetChild {
  const started = startFleetChild(config);
  cleanup.push(() => started.kill());
  return started;
}

/** A key prefix of this test, whose keys are deleted afterwards. */
function prefix(): string {
  const keyPrefix = uniquePrefix();
  cleanup.push(async () => {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await admin.del(...keys);
    } while (cursor !== '0');
  });
  return keyPrefix;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The most accept times in any half-open window of `windowMs` (as `maxInAnyWindow` counts). */
function maxInWindow(times: readonly number[], windowMs: number): number {
  let best = 0;
  for (let start = 0, end = 0; end < times.length; end++) {
    while (times[end]! - times[start]! >= windowMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** What the server saw of a run, in the terms the limits are stated in. */
function measure(srv: ThrottlingSmtpServer) {
  const accepted = [...srv.accepted].sort((a, b) => a.at - b.at);
  const at = accepted.map((message) => message.at);
  const spanMs = at.at(-1)! - at[0]!;
  const counts = srv.counts();
  // The first message of each SMTP connection also carries the connection's setup (TCP, greeting,
  // EHLO): counted apart, it tells a pacing fault from the cost of opening connections.
  const connections = new Set<string>();
  const later: number[] = [];
  for (const message of accepted) {
    if (connections.has(message.connectionId)) later.push(message.at);
    else connections.add(message.connectionId);
  }
  return {
    accepted: at.length,
    spanMs,
    /** Sends per second over the run: intervals over the time they span. */
    ratePerSecond: (at.length - 1) / (spanMs / 1000),
    maxInAnySecond: srv.maxInAnyWindow(1000),
    smtpConnections: connections.size,
    maxInAnySecondWithoutFirstOfConnection: maxInWindow(later, 1000),
    maxConcurrentConnections: srv.stats().maxConcurrentConnections,
    unique: counts.unique,
    duplicates: counts.duplicates,
    withoutId: counts.withoutId,
  };
}

/** Starts the children, lets them go at once, and waits for every one to report done and exit 0. */
async function runFleet(children: FleetChild[], timeoutMs: number): Promise<void> {
  await Promise.all(children.map((c) => c.waitFor((line) => line.ready === true, 20_000)));
  for (const c of children) c.go();
  const done = await Promise.all(children.map((c) => c.waitFor((line) => line.done === true, timeoutMs)));
  expect(done.map((line) => line.failed)).toEqual(children.map(() => 0));
  expect(await Promise.all(children.map((c) => c.exited))).toEqual(children.map(() => 0));
}

function expectFleetLimits(srv: ThrottlingSmtpServer, expected: { total: number; rate: number; connections: number }, label: string): void {
  const seen = measure(srv);
  console.log(`${label}: ${JSON.stringify(seen)}`);
  expect(seen.accepted).toBe(expected.total);
  expect(seen.unique).toBe(expected.total);
  expect(seen.duplicates).toBe(0);
  expect(seen.withoutId).toBe(0);
  // The fleet's rate over the run is at most the configured one (within 5 %), and no second holds more
  // than the rate plus the slack of network jitter (a send reserved at t reaches the server a few ms later).
  // Below it, the bound only says that the fleet does not starve: a machine busy with other work
  // (here the rest of the suite) delays sends (0.946 of the rate once, with another job besides the
  // suite). How close to the target a fleet gets is measured by `npm run bench` (fleet fidelity).
  expect(seen.ratePerSecond).toBeGreaterThanOrEqual(expected.rate * 0.85);
  expect(seen.ratePerSecond).toBeLessThanOrEqual(expected.rate * 1.05);
  expect(seen.maxConcurrentConnections).toBeLessThanOrEqual(expected.connections);
  // The server counts arrivals, which trail the booked slots by the time the body and the reply take
  // (a new connection books once the server has accepted DATA, so not its handshake). On these
  // 2-CPU machines every process stalls at once for 20-40 ms a few times a second with only a fleet
  // running (docs/benchmarks.md, fleet fidelity at 5f82270: gaps in the server's record followed by
  // bursts), longer with the rest of the suite beside it; the slots due meanwhile arrive together.
  // So a window may hold the sends of 100 ms more than a second (53 of 50/s was seen with a slack
  // of 2), and no more: a limiter that let a process go unshared, or a burst, shows far above it.
  // The message also gives the count without the first message of each connection, for comparison.
  const most = expected.rate + Math.ceil(expected.rate * 0.1);
  expect(
    seen.maxInAnySecond,
    `no 1 s window may hold more than ${most}; without the first message of each of the ${seen.smtpConnections} SMTP connections the most is ${seen.maxInAnySecondWithoutFirstOfConnection}`,
  ).toBeLessThanOrEqual(most);
}

const fleetConfig = (srv: ThrottlingSmtpServer, keyPrefix: string, name: string, extra: Partial<FleetChildConfig>): FleetChildConfig => ({
  name,
  keyPrefix,
  smtp: { host: srv.host, port: srv.port },
  rate: { max: 50, per: '1s' },
  maxConnections: 3,
  count: 0,
  waitForGo: true,
  ...extra,
});

describe.skipIf(!sharedRedis && !canSpawnRedis)('a fleet of processes sharing one Redis', () => {
  it('three processes hold one 50/s rate and 3 connections between them, and deliver every message once', { timeout: 60_000 }, async () => {
    const srv = await smtp({ latencyMs: 5 });
    const keyPrefix = prefix();
    // Two children send through sendBatch (the ledger in Redis), one through send().
    const children = (['a', 'b', 'c'] as const).map((name, i) =>
      child(fleetConfig(srv, keyPrefix, `fleet-${name}`, { redis: redisUrl, count: 150, mode: i === 2 ? 'send' : 'batch' })),
    );
    await runFleet(children, 40_000);
    expectFleetLimits(srv, { total: 450, rate: 50, connections: 3 }, 'fleet of 3 on one Redis');
  });

  it('a process killed with SIGKILL gives its connection slots back within the lease, and the survivor finishes', { timeout: 90_000 }, async () => {
    // 200 ms per message: three connections carry 15/s, so the connection cap, not the rate, binds.
    const srv = await smtp({ latencyMs: 200 });
    const keyPrefix = prefix();
    const base = { redis: redisUrl, rate: { max: 1_000, per: '1s' }, maxConnections: 3 };
    const victim = child(fleetConfig(srv, keyPrefix, 'victim', { ...base, count: 5_000, mode: 'send' }));
    const survivor = child(fleetConfig(srv, keyPrefix, 'survivor', { ...base, count: 30 }));
    await Promise.all([victim, survivor].map((c) => c.waitFor((line) => line.ready === true, 20_000)));

    const acceptedOf = (name: string) => srv.accepted.filter((m) => m.messageId?.startsWith(`<${name}-`)).length;
    const victimGo = Date.now();
    victim.go();
    // The victim holds all three connections.
    await vi.waitFor(
      () => {
        expect(srv.stats().connections).toBe(3);
        expect(acceptedOf('victim')).toBeGreaterThanOrEqual(10);
      },
      { timeout: 15_000, interval: 10 },
    );
    survivor.go();
    await sleep(1_000);
    // Queued behind the victim's three slots: nothing of the survivor's went out.
    expect(acceptedOf('survivor')).toBe(0);

    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    expect(await victim.exited).toBe('SIGKILL');

    // Sample the server's open connections until the survivor is done.
    let gone: number | undefined;
    let back: number | undefined;
    const survivorDone = survivor.waitFor((line) => line.done === true, LEASE_MS + 30_000);
    let finished = false;
    void survivorDone.finally(() => (finished = true)).catch(() => {});
    while (!finished) {
      const open = srv.stats().connections;
      if (gone === undefined && open === 0) gone = Date.now();
      if (gone !== undefined && back === undefined && open === 3) back = Date.now();
      await sleep(10);
    }
    const done = await survivorDone;
    expect(await survivor.exited).toBe(0);

    const firstSurvivorAccept = Math.min(...srv.accepted.filter((m) => m.messageId?.startsWith('<survivor-')).map((m) => m.at));
    const result = {
      victimSent: acceptedOf('victim'),
      socketsClosedAfterKillMs: gone === undefined ? null : gone - killedAt,
      firstSurvivorAcceptAfterKillMs: firstSurvivorAccept - killedAt,
      threeConnectionsBackAfterKillMs: back === undefined ? null : back - killedAt,
      victimHeldSlotsForMs: firstSurvivorAccept - victimGo,
      survivor: done,
      maxConcurrentConnections: srv.stats().maxConcurrentConnections,
    };
    console.log(`crash recovery: ${JSON.stringify(result)}`);

    expect(done).toMatchObject({ sent: 30, failed: 0 });
    expect(acceptedOf('survivor')).toBe(30);
    expect(srv.counts()).toMatchObject({ duplicates: 0 });
    expect(srv.stats().maxConcurrentConnections).toBeLessThanOrEqual(3);
    // The dead process's slots came back once its leases ran out, not before (its leases were taken
    // after victimGo and last LEASE_MS at least), and not much later (the survivor re-checks each second).
    expect(firstSurvivorAccept).toBeGreaterThanOrEqual(victimGo + LEASE_MS - 100);
    expect(back).toBeDefined();
    expect(back! - killedAt).toBeLessThanOrEqual(LEASE_MS + RECHECK_MARGIN_MS);
  });
});

describe('a fleet of processes on a Redis Cluster', () => {
  it.skipIf(!canSpawnRedis)('three processes hold one 50/s rate and 3 connections through a 3-master Redis Cluster', { timeout: 60_000 }, async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    cleanup.push(() => cluster.stop());
    const srv = await smtp({ latencyMs: 5 });
    const keyPrefix = uniquePrefix();
    const children = (['a', 'b', 'c'] as const).map((name, i) =>
      child(fleetConfig(srv, keyPrefix, `cluster-${name}`, { cluster: [...cluster.nodes], count: 100, mode: i === 2 ? 'send' : 'batch' })),
    );
    await runFleet(children, 40_000);
    expectFleetLimits(srv, { total: 300, rate: 50, connections: 3 }, 'fleet of 3 on a Redis Cluster');
    expect(srv.missing(['a', 'b', 'c'].flatMap((name) => Array.from({ length: 100 }, (_, i) => fleetMessageId(`cluster-${name}`, i))))).toEqual([]);
  });
});
