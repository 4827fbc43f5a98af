import { afterEach, describe, expect, it } from 'vitest';
import { createMailer, type Mailer, type MailerOptions } from '../../src/index.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { Redis } from 'ioredis';
import { Redis as Redis6 } from 'ioredis6';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { ledgerKeys } from '../../src/batch/redis-ledger.js';
import { startRedisServer, uniquePrefix, type RedisServer } from '../helpers/redis-server.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

async function smtp(options: Parameters<typeof startThrottlingSmtpServer>[0] = {}): Promise<ThrottlingSmtpServer> {
  const srv = await startThrottlingSmtpServer(options);
  cleanup.push(() => srv.close());
  return srv;
}

function mailer(srv: ThrottlingSmtpServer, options: Partial<MailerOptions>): Mailer {
  const m = createMailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 4, rate: { max: 400, per: '1s' } } }, retry: { minDelay: '50ms', maxDelay: '500ms' }, ...options });
  cleanup.push(() => m.close());
  return m;
}

const list = (n: number) => Array.from({ length: n }, (_, i) => `reader${i}@example.net`);
const build = (email: string) => ({ id: email, from: 'news@example.org', to: email, subject: 'Hi', text: 'Hello' });

describe('sendBatch on Redis', () => {
  it('resumes a stopped batch from another mailer (another process) without sending anything twice', async () => {
    const srv = await smtp();
    const keyPrefix = uniquePrefix();
    const first = mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix });
    const controller = new AbortController();
    let sent = 0;
    first.on('sent', () => ++sent === 150 && controller.abort());
    const a = await first.sendBatch(list(500), { id: 'nov', build, signal: controller.signal, concurrency: 20 });
    expect(a.aborted).toBe(true);
    await first.close();

    const second = mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix });
    const b = await second.sendBatch(list(500), { id: 'nov', build });
    expect(b).toMatchObject({ total: 500, skipped: a.sent, sent: 500 - a.sent, failed: 0, inDoubt: 0 });
    expect(srv.counts()).toMatchObject({ unique: 500, duplicates: 0 });
  });

  // mailpacer depends on ioredis 5 (docs/benchmarks.md says why); a client the application made
  // with ioredis 6 must work as well.
  it('takes an ioredis 6 client: shares the limits through it and resumes a batch', async () => {
    expect((createRequire(import.meta.url)('ioredis6/package.json') as { version: string }).version).toMatch(/^6\./);
    const srv = await smtp();
    const keyPrefix = uniquePrefix();
    const client = new Redis6('redis://127.0.0.1:6379');
    cleanup.push(() => client.quit());
    const m = mailer(srv, { redis: client, keyPrefix });
    const first = await m.sendBatch(list(200), { id: 'six', build });
    expect(first).toMatchObject({ total: 200, sent: 200, failed: 0 });
    const again = await m.sendBatch(list(200), { id: 'six', build });
    expect(again).toMatchObject({ total: 200, sent: 0, skipped: 200 });
    expect(srv.counts()).toMatchObject({ unique: 200, duplicates: 0 });
    // The limits went through Redis: the lane's rate and slot keys are there under the prefix.
    expect((await client.keys(`${keyPrefix}*`)).length).toBeGreaterThan(1);
    expect(client.status).toBe('ready');
  });

  it('gives a short batch\'s ledger its TTL', async () => {
    const srv = await smtp();
    const keyPrefix = uniquePrefix();
    const m = mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix, ledgerTtl: '1h' });
    await m.sendBatch(list(5), { id: 'short', build });
    const client = new Redis('redis://127.0.0.1:6379');
    cleanup.push(() => client.quit());
    const ttl = await client.pttl(ledgerKeys(keyPrefix, 'short').entries);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
  });

  // A run opened and then abandoned by a throw would keep its heartbeat beating for good.
  it('opens no ledger run for a batch whose options are refused', async () => {
    const srv = await smtp();
    const keyPrefix = uniquePrefix();
    const m = mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix });
    const client = new Redis('redis://127.0.0.1:6379');
    cleanup.push(() => client.quit());
    const { owners } = ledgerKeys(keyPrefix, 'bad');
    await expect(m.sendBatch(list(5), { id: 'bad', build, waveInterval: 'soon' })).rejects.toThrow('sendBatch options.waveInterval');
    expect(await client.hlen(owners)).toBe(0);
  });

  it('two mailers running the same batch at once deliver each message once', async () => {
    const srv = await smtp({ latencyMs: 2 });
    const keyPrefix = uniquePrefix();
    const [x, y] = [mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix }), mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix })];
    const [rx, ry] = await Promise.all([x.sendBatch(list(600), { id: 'twin', build }), y.sendBatch(list(600), { id: 'twin', build })]);
    expect(rx.sent + ry.sent).toBe(600);
    expect(rx.sent).toBeGreaterThan(0);
    expect(ry.sent).toBeGreaterThan(0);
    expect(srv.counts()).toMatchObject({ unique: 600, duplicates: 0 });
  });

  it('counts an id repeated in the batch once: failed, then skipped (not tried again in the same run)', async () => {
    const srv = await smtp({ script: [{ match: 'gone@example.net', code: 550, reply: '550 5.1.1 User unknown' }] });
    const m = mailer(srv, { redis: 'redis://127.0.0.1:6379', keyPrefix: uniquePrefix() });
    const report = await m.sendBatch(['gone@example.net', 'ok@example.net', 'gone@example.net'], { id: 'repeats', build, concurrency: 1 });
    expect(report).toMatchObject({ total: 3, sent: 1, failed: 1, skipped: 1 });
    expect(srv.stats().rejected[550]).toBe(1);
    // A re-run is another run: it tries the failed one again.
    const again = await m.sendBatch(['gone@example.net'], { id: 'repeats', build });
    expect(again).toMatchObject({ total: 1, failed: 1 });
    expect(srv.stats().rejected[550]).toBe(2);
  });

  it('waits for Redis when it is away as a batch with an id starts, then sends everything once', async () => {
    const redis: RedisServer = await startRedisServer();
    cleanup.push(() => redis.stop());
    const srv = await smtp();
    const m = mailer(srv, { redis: redis.url, keyPrefix: uniquePrefix() });
    const restarted = redis.restart({ keepData: true, downMs: 6_000 }); // longer than the 5 s call timeout
    while (await accepts(redis.port)) await new Promise((resolve) => setTimeout(resolve, 20));
    const report = await m.sendBatch(list(20), { id: 'starts-down', build });
    await restarted;
    expect(report).toMatchObject({ total: 20, sent: 20, failed: 0, inDoubt: 0 });
    expect(srv.counts()).toMatchObject({ unique: 20, duplicates: 0 });
  });

  for (const keepData of [true, false]) {
    it(`survives a Redis restart mid-batch ${keepData ? 'with its data' : 'empty'}: every message exactly once`, async () => {
      const redis: RedisServer = await startRedisServer();
      cleanup.push(() => redis.stop());
      const srv = await smtp();
      const m = mailer(srv, { redis: redis.url, keyPrefix: uniquePrefix(), providers: { main: { transport: srv.transportOptions(), maxConnections: 3, rate: { max: 100, per: '1s' } } } });
      const errors: string[] = [];
      m.on('error', (e) => errors.push(`${e.source}: ${e.error.message}`));
      let sent = 0;
      let restarted: Promise<void> | undefined;
      m.on('sent', () => {
        if (++sent === 100) restarted = redis.restart({ keepData, downMs: 6_000 }); // longer than the 5 s call timeout: the outage is certainly seen
      });
      const report = await m.sendBatch(list(400), { id: `restart-${keepData}`, build });
      await restarted;
      expect(report).toMatchObject({ total: 400, sent: 400, failed: 0, inDoubt: 0 });
      expect(srv.counts()).toMatchObject({ unique: 400, duplicates: 0 });
      expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(/^redis: Redis is unreachable/), expect.stringMatching(/^redis: Redis is back/)]));
    });
  }
});

/** Whether something listens on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
