import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMailer, isDeliveryError, type Mailer, type MailerOptions } from '../../src/index.js';
import { connectRedis } from '../../src/limiter/connect.js';
import { createFailoverLimiter, createRedisHealth, share } from '../../src/limiter/failover.js';
import { createMemoryLimiter } from '../../src/limiter/memory.js';
import { createRedisLimiter } from '../../src/limiter/redis.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { freePort, startRedisServer, uniquePrefix } from '../helpers/redis-server.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

async function smtp(): Promise<ThrottlingSmtpServer> {
  const srv = await startThrottlingSmtpServer();
  cleanup.push(() => srv.close());
  return srv;
}

function mailer(options: MailerOptions): { m: Mailer; errors: string[] } {
  const m = createMailer(options);
  cleanup.push(() => m.close());
  const errors: string[] = [];
  m.on('error', (e) => errors.push(`${e.source}: ${e.error.message}`));
  return { m, errors };
}

const msg = (i: number) => ({ from: 'news@example.org', to: `r${i}@example.net`, subject: 'Hi', text: 'Hello' });

describe('Redis outages', () => {
  it("onRedisDown: 'local' keeps sending at this process's share while Redis is down, and goes back to Redis", async () => {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const srv = await smtp();
    const { m, errors } = mailer({ redis: redis.url, keyPrefix: uniquePrefix(), onRedisDown: 'local', providers: { main: { transport: srv.transportOptions(), rate: { max: 40, per: '1s' }, maxConnections: 2 } }, retry: { minDelay: '50ms', maxDelay: '200ms' } });

    await Promise.all(Array.from({ length: 20 }, (_, i) => m.send(msg(i))));
    const downAt = Date.now();
    const restart = redis.restart({ keepData: false, downMs: 6_000 });
    await Promise.all(Array.from({ length: 120 }, (_, i) => m.send(msg(20 + i))));
    await restart;
    await Promise.all(Array.from({ length: 20 }, (_, i) => m.send(msg(140 + i))));

    expect(srv.counts()).toMatchObject({ unique: 160, duplicates: 0 });
    // Mail kept flowing while Redis was away (not only after it came back).
    const duringOutage = srv.accepted.filter((a) => a.at > downAt + 500 && a.at < downAt + 5_500).length;
    expect(duringOutage).toBeGreaterThan(40);
    expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(/^redis: Redis is unreachable .*this process's share/), expect.stringMatching(/^redis: Redis is back/)]));
  });

  // Its share is a new lane in memory whenever the fleet's size changes (deploys, autoscaling):
  // before, what the process had learned was left behind in the old one, a stop included.
  it("onRedisDown: 'local' carries a lane's stop and slow-down over to a share resized for a new fleet", async () => {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const keyPrefix = uniquePrefix();
    const limiter = (client: ReturnType<typeof connectRedis>['client']) =>
      createFailoverLimiter({ primary: createRedisLimiter({ client, keyPrefix }), client, keyPrefix, mode: 'local', health: createRedisHealth(() => {}), callTimeoutMs: 1_000 });
    const [first, second] = [connectRedis(redis.url), connectRedis(redis.url)];
    cleanup.push(() => first.close(), () => second.close());
    const a = limiter(first.client);
    cleanup.push(() => a.close());
    const lane = a.lane('ses', { windows: [{ max: 10, perMs: 1_000, burst: 1 }], maxConnections: 4 });
    // Applied in Redis and mirrored into this process's share for a fleet of 1.
    await lane.update((state) => ({ ...state, rateFactor: 0.5, stopped: 'authentication failed: 535' }));
    const b = limiter(second.client); // a second process joins
    cleanup.push(() => b.close());
    await vi.waitFor(() => expect(a.fleetSize()).toBe(2), { timeout: 8_000, interval: 100 });
    await redis.stop();
    const { state } = await lane.reserve();
    expect(state).toMatchObject({ stopped: 'authentication failed: 535', rateFactor: 0.5, connections: 2 });
  });

  it("onRedisDown: 'wait' (the default) waits for a Redis that is unreachable at createMailer, then sends", async () => {
    const port = await freePort();
    const srv = await smtp();
    const { m, errors } = mailer({ redis: `redis://127.0.0.1:${port}`, keyPrefix: uniquePrefix(), providers: { main: { transport: srv.transportOptions() } } });
    const sending = Promise.all(Array.from({ length: 10 }, (_, i) => m.send(msg(i))));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(srv.counts().unique).toBe(0);
    const redis = await startRedisServer({ port });
    cleanup.push(() => redis.stop());
    await sending;
    expect(srv.counts()).toMatchObject({ unique: 10, duplicates: 0 });
    expect(errors[0]).toMatch(/^redis: Redis is unreachable .*sends wait for it/);
  });

  // A Redis that stops answering (a network that drops packets; here the server stopped with
  // SIGSTOP) fails no call, and a send waiting for a connection slot waits on Redis untimed.
  it("onRedisDown: 'local' sends at its share while Redis stops answering, and sends everything once it answers again", async () => {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const pid = redis.pid;
    cleanup.push(async () => void process.kill(pid, 'SIGCONT'));
    const srv = await smtp();
    const { m } = mailer({ redis: redis.url, keyPrefix: uniquePrefix(), onRedisDown: 'local', providers: { main: { transport: srv.transportOptions(), rate: { max: 50, per: '1s' }, maxConnections: 2 } } });
    await m.send(msg(0));
    await new Promise((r) => setTimeout(r, 1_500));
    process.kill(pid, 'SIGSTOP');
    const sending = Promise.all(Array.from({ length: 10 }, (_, i) => m.send(msg(i + 1))));
    await vi.waitFor(() => expect(srv.counts().unique).toBeGreaterThan(1), { timeout: 20_000, interval: 100 });
    process.kill(pid, 'SIGCONT');
    await sending;
    expect(srv.counts()).toMatchObject({ unique: 11, duplicates: 0 });
  }, 60_000);

  it("answers stats() while Redis is away with onRedisDown: 'wait', from what the lanes knew", async () => {
    const port = await freePort();
    const srv = await smtp();
    const { m } = mailer({ redis: `redis://127.0.0.1:${port}`, keyPrefix: uniquePrefix(), providers: { main: { transport: srv.transportOptions(), rate: { max: 10, per: '1s' } } } });
    const stats = await Promise.race([m.stats(), new Promise((resolve) => setTimeout(resolve, 10_000, 'still waiting'))]);
    expect(stats).toMatchObject([{ provider: 'main', configuredRate: 10 }]);
  }, 20_000);

  it('never hangs: with Redis gone for good a send fails at its retry deadline', async () => {
    const port = await freePort();
    const srv = await smtp();
    const { m } = mailer({ redis: `redis://127.0.0.1:${port}`, keyPrefix: uniquePrefix(), providers: { main: { transport: srv.transportOptions() } }, retry: { maxRetryTime: '3s', minDelay: '100ms', maxDelay: '500ms' } });
    const started = Date.now();
    const error = await m.send(msg(1)).catch((e: unknown) => e);
    expect(isDeliveryError(error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(srv.counts().unique).toBe(0);
  });
});

describe("onRedisDown: 'local' and connection slots", () => {
  // Redis does not count a slot of the local share: kept after Redis is back, it would sit beside
  // the fleet's slots in Redis, over the cap.
  it('counts a slot taken from the local share as lost once Redis answers again', async () => {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const connection = connectRedis(redis.url);
    cleanup.push(() => connection.close());
    const keyPrefix = uniquePrefix();
    const limiter = createFailoverLimiter({ primary: createRedisLimiter({ client: connection.client, keyPrefix }), client: connection.client, keyPrefix, mode: 'local', health: createRedisHealth(() => {}, 100), callTimeoutMs: 500 });
    cleanup.push(() => limiter.close());
    const lane = limiter.lane('slots', { windows: [], maxConnections: 2 });
    const inRedis = await lane.acquire();
    expect(inRedis.lost).toBe(false);
    await inRedis.release();
    const restart = redis.restart({ keepData: true, downMs: 2_000 });
    await new Promise((r) => setTimeout(r, 300));
    const local = await lane.acquire();
    expect(local.lost).toBe(false);
    await restart;
    await vi.waitFor(async () => expect(await lane.held()).toBe(0), { timeout: 10_000, interval: 100 });
    expect(local.lost).toBe(true);
    await local.release();
  }, 30_000);
});

describe("onRedisDown: 'local' and a quota", () => {
  const day = 86_400_000;
  const spec = { windows: [{ max: 10, perMs: day, burst: 10 }], maxConnections: 2 };

  async function quotaLane() {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const connection = connectRedis(redis.url);
    cleanup.push(() => connection.close());
    const keyPrefix = uniquePrefix();
    const limiter = createFailoverLimiter({
      primary: createRedisLimiter({ client: connection.client, keyPrefix, quotaCounts: true }),
      client: connection.client,
      keyPrefix,
      mode: 'local',
      health: createRedisHealth(() => {}, 100),
      callTimeoutMs: 500,
    });
    cleanup.push(() => limiter.close());
    const lane = limiter.lane('daily', spec);
    /** Sends booked in Redis, read from the lane's rate hash (its quota buckets). */
    const inRedis = async () => {
      const reader = new Redis(redis.url, { maxRetriesPerRequest: 0, lazyConnect: true });
      const fields = await reader.hgetall(`${keyPrefix}:{lane:daily}:tat`).finally(() => reader.disconnect());
      return Object.entries(fields).reduce((sum, [field, count]) => (field.startsWith('q0:') ? sum + Number(count) : sum), 0);
    };
    return { redis, lane, inRedis };
  }

  /** How many bookings in a row the lane admits at once (within a minute), up to `limit`. */
  async function admitted(lane: { reserve(): Promise<{ waitMs: number }> }, limit: number) {
    for (let n = 0; n < limit; n++) if ((await lane.reserve()).waitMs > 60_000) return n;
    return limit;
  }

  // Before, the share started from an empty quota: 6 sent through Redis, then 10 more locally.
  it('does not grant again what was booked in Redis before it went away', async () => {
    const { redis, lane } = await quotaLane();
    expect(await admitted(lane, 6)).toBe(6);
    await redis.stop();
    expect(await admitted(lane, 10)).toBe(4);
  });

  // Before, what the share sent was never counted in Redis: the fleet could send a whole quota more.
  it('books what it sent meanwhile into Redis when Redis is back', async () => {
    const { redis, lane, inRedis } = await quotaLane();
    expect(await admitted(lane, 2)).toBe(2);
    const restarting = redis.restart({ keepData: true, downMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await admitted(lane, 3)).toBe(3); // locally: Redis is stopping or down
    await restarting;
    // The next bookings reach Redis once the lane tries it again; the 3 made locally are then counted there too.
    let made = 5;
    for (let waited = 0; (await inRedis().catch(() => 0)) < made && waited < 5_000; waited += 200) {
      expect((await lane.reserve()).waitMs).toBeLessThan(60_000);
      made++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Every booking is counted there (one whose call timed out while Redis came back may have run
    // there later and count twice: the quota is then under-used, never exceeded).
    expect(await inRedis()).toBeGreaterThanOrEqual(made);
    // And the quota holds across both: no more than 10 at once in all.
    expect(made + (await admitted(lane, 10))).toBeLessThanOrEqual(10);
  });

  // The mailer asks Redis's reserve for the quota counts only in this mode (`quotaCounts`): without
  // them the share would start from an empty quota and send 10 more, 16 in all.
  it('holds a provider quota of 10 a day across an outage, through the mailer', async () => {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const srv = await smtp();
    const { m } = mailer({ redis: redis.url, keyPrefix: uniquePrefix(), onRedisDown: 'local', providers: { main: { transport: srv.transportOptions(), rate: { max: 10, per: '1d' }, maxConnections: 1 } } });
    await Promise.all(Array.from({ length: 6 }, (_, i) => m.send(msg(i))));
    await redis.stop();
    const giveUp = new AbortController();
    const sending = Promise.allSettled(Array.from({ length: 10 }, (_, i) => m.send(msg(6 + i), { signal: giveUp.signal })));
    // The quota's rest goes locally; then nothing more for a second, and the others are called off.
    await vi.waitFor(() => expect(srv.counts().unique).toBeGreaterThanOrEqual(10), { timeout: 20_000, interval: 100 });
    await new Promise((r) => setTimeout(r, 1_000));
    giveUp.abort();
    const outcomes = await sending;
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(4);
    expect(srv.counts()).toMatchObject({ unique: 10, duplicates: 0 });
  });
});

describe("onRedisDown: 'wait'", () => {
  it("bounds a booking's wait for Redis by the message's deadline, and says so", async () => {
    const port = await freePort();
    const redis = connectRedis(`redis://127.0.0.1:${port}`);
    cleanup.push(() => redis.close());
    const keyPrefix = uniquePrefix();
    const downs: string[] = [];
    const limiter = createFailoverLimiter({
      primary: createRedisLimiter({ client: redis.client, keyPrefix }),
      client: redis.client,
      keyPrefix,
      mode: 'wait',
      health: createRedisHealth((up, error) => downs.push(`${up} ${error?.message ?? ''}`), 50),
      callTimeoutMs: 200,
    });
    cleanup.push(() => limiter.close());
    const lane = limiter.lane('main', { windows: [{ max: 10, perMs: 1_000, burst: 1 }], maxConnections: 1 });
    const error = (await lane.reserve(undefined, Date.now() + 600).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe('the message reached its retry deadline while Redis was away');
    expect(downs[0]).toMatch(/^false /);
  });
});

describe('share', () => {
  it('gives each process its share of every limit: a fraction of a pace, at least one send of a quota and one connection', () => {
    expect(share({ windows: [{ max: 50, perMs: 1_000, burst: 1 }, { max: 10_000, perMs: 86_400_000, burst: 10_000 }], maxConnections: 10 }, 4)).toEqual({
      windows: [
        { max: 12.5, perMs: 1_000, burst: 1 },
        { max: 2_500, perMs: 86_400_000, burst: 2_500 },
      ],
      maxConnections: 2,
    });
    expect(share({ windows: [{ max: 2, perMs: 1_000, burst: 1 }, { max: 3, perMs: 86_400_000, burst: 3 }], maxConnections: 1 }, 5)).toEqual({
      windows: [
        { max: 0.4, perMs: 1_000, burst: 1 },
        { max: 1, perMs: 86_400_000, burst: 1 },
      ],
      maxConnections: 1,
    });
  });

  // Before, each process's share was rounded up to one send per window: 16 processes on a lane
  // of 10/s sent 16/s between them while Redis was away.
  it('keeps a fleet larger than the rate at the rate in all', async () => {
    const processes = 16;
    const lanes = Array.from({ length: processes }, (_, i) => createMemoryLimiter().lane(`p${i}`, share({ windows: [{ max: 10, perMs: 1_000, burst: 1 }], maxConnections: 4 }, processes)));
    // Booked waits over the next 10 s, all processes together: the first send of each is at once.
    let booked = 0;
    for (const lane of lanes) while ((await lane.reserve()).waitMs < 10_000) booked++;
    expect(booked).toBeGreaterThanOrEqual(10 * 10);
    expect(booked).toBeLessThanOrEqual(10 * 10 + processes);
  });
});
