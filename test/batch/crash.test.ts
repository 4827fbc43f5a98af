import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ledgerKeys } from '../../src/batch/redis-ledger.js';
import { createMailer, type BatchReport, type Mailer } from '../../src/index.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { batchIds, buildMessage, type BatchChildConfig, type BatchChildLine } from '../helpers/batch-child.js';
import { redisAvailable, uniquePrefix } from '../helpers/redis-server.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const N = 1_000;
/** The ledger's heartbeat lease (`createRedisLedger`'s default; `createMailer` has no option for it). */
const LEDGER_LEASE_MS = 60_000;

const available = await redisAvailable();
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

/** A batch run in a child process (`test/helpers/batch-child.ts`), read line by line. */
interface BatchChild {
  readonly pid: number;
  readonly ready: Promise<void>;
  readonly report: Promise<BatchReport>;
  /** Starts the batch of a child started with `waitForGo`. */
  go(): void;
  /** SIGKILL by PID; resolves once the process is gone. */
  kill(): Promise<void>;
}

function startChild(config: BatchChildConfig): BatchChild {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/batch-child.ts'], {
    cwd: ROOT,
    env: { ...process.env, BATCH_CHILD: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const failed = exited.then(([code, signal]) => Promise.reject(new Error(`batch child exited (${signal ?? code}) early:\n${stderr}`)));
  failed.catch(() => {});
  const next = (type: BatchChildLine['type']) =>
    Promise.race([
      new Promise<BatchChildLine>((resolve) =>
        lines.on('line', (text) => {
          const line = JSON.parse(text) as BatchChildLine;
          if (line.type === type) resolve(line);
        }),
      ),
      failed,
    ]);
  const report = next('report').then((line) => (line as Extract<BatchChildLine, { type: 'report' }>).report);
  report.catch(() => {}); // a killed child never reports: only a test that awaits its report fails
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGKILL');
    await exited;
  };
  cleanup.push(kill);
  return {
    pid: child.pid!,
    ready: next('ready').then(() => undefined),
    report,
    go: () => child.stdin!.write('go\n'),
    kill,
  };
}

async function smtp(): Promise<ThrottlingSmtpServer> {
  // The latency before each 250 makes 1,000 messages take a few seconds on 4 connections.
  const server = await startThrottlingSmtpServer({ latencyMs: 10 });
  cleanup.push(() => server.close());
  return server;
}

function redis(keyPrefix: string): Redis {
  const client = new Redis(REDIS_URL);
  cleanup.push(async () => {
    const keys = await client.keys(`${keyPrefix}:*`);
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
  });
  return client;
}

/** A mailer in this process on the children's Redis prefix: a re-run from another process. */
function mailer(server: ThrottlingSmtpServer, keyPrefix: string): Mailer {
  const m = createMailer({ redis: REDIS_URL, keyPrefix, providers: { main: { transport: server.transportOptions(), maxConnections: 4 } }, retry: { minDelay: '50ms', maxDelay: '500ms' } });
  cleanup.push(() => m.close());
  return m;
}

async function* cursor(ids: string[]) {
  yield* ids;
}

/** The ledger of a batch by state letter (c claimed, s sending, S sent, f failed, d in doubt): ids and their owners. */
async function ledger(client: Redis, keyPrefix: string, batchId: string) {
  const entries = await client.hgetall(ledgerKeys(keyPrefix, batchId).entries);
  const byState: Record<string, string[]> = { c: [], s: [], S: [], f: [], d: [] };
  const owners = new Set<string>();
  for (const [id, entry] of Object.entries(entries)) {
    const [state, owner] = entry.split('|') as [string, string];
    (byState[state] ??= []).push(id);
    if (state === 'c' || state === 's') owners.add(owner);
  }
  return { byState, owners };
}

/** Waits until the heartbeats of `runs` have expired by Redis's clock: their claims are free then. */
async function outliveHeartbeats(client: Redis, keyPrefix: string, batchId: string, runs: Set<string>): Promise<number> {
  const owners = await client.hgetall(ledgerKeys(keyPrefix, batchId).owners);
  const [seconds, micros] = await client.time();
  const now = Number(seconds) * 1_000 + Number(micros) / 1_000;
  const expiry = Math.max(now, ...[...runs].map((run) => Number(owners[run] ?? 0)));
  const waitMs = Math.ceil(expiry - now) + 250;
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  return waitMs;
}

/** `CRASH_TEST_VERBOSE=1` prints what each phase saw. */
const note = (what: string, values: Record<string, unknown>) => {
  if (process.env.CRASH_TEST_VERBOSE) console.info(`${what}: ${JSON.stringify(values)}`);
};
const sorted = (ids: Iterable<string>) => [...ids].sort();
/** Ids the server accepted more than once, without angle brackets. */
const duplicated = (server: ThrottlingSmtpServer) => sorted([...server.counts().byMessageId].filter(([, n]) => n > 1).map(([id]) => id.slice(1, -1)));

describe.skipIf(!available)('sendBatch across processes (Redis ledger)', () => {
  it(
    'a batch whose process was killed mid-way resumes: the dead run holds its claims until its heartbeat expires, then every message arrives once, in-doubt ones only on request',
    async () => {
      const server = await smtp();
      const keyPrefix = uniquePrefix();
      const client = redis(keyPrefix);
      const batchId = 'killed';
      const ids = batchIds(N);

      // 1. A child runs the batch; it is killed (SIGKILL) once the server has accepted 200.
      const child = startChild({ redis: REDIS_URL, keyPrefix, batchId, smtp: { host: server.host, port: server.port }, n: N });
      await child.ready;
      const deadline = Date.now() + 30_000;
      while (server.accepted.length < 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      await child.kill();
      const acceptedAtKill = server.accepted.length;
      expect(acceptedAtKill).toBeGreaterThanOrEqual(200);
      expect(acceptedAtKill).toBeLessThan(N);
      // Commands the child wrote before dying may still land; then the ledger is what it left.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const dead = await ledger(client, keyPrefix, batchId);
      const [claimed, sending, sent] = [dead.byState.c!, dead.byState.s!, dead.byState.S!];
      note('killed', { acceptedAtKill, claimed: claimed.length, sending: sending.length, sent: sent.length });
      expect(dead.owners.size).toBe(1);
      expect(claimed.length + sending.length).toBeGreaterThan(0);
      // Every 250 the child recorded is on the server; a 'claimed' one never reached the network.
      expect(server.missing(sent)).toEqual([]);
      expect(server.missing(claimed)).toEqual(claimed);

      // 2. A re-run at once: the dead run's heartbeat is still alive, so its claims count as held by
      //    another run and are skipped, sent or not. (It also waits for the dead run's connection
      //    slots, whose leases expire after 30 s.)
      const early = await mailer(server, keyPrefix).sendBatch(cursor(ids), { id: batchId, build: buildMessage });
      note('re-run at once', { ...early, failures: undefined, inDoubtIds: undefined });
      expect(early).toMatchObject({ total: N, failed: 0, inDoubt: 0, sent: N - sent.length - sending.length - claimed.length, skipped: sent.length + sending.length + claimed.length });
      expect(server.counts().duplicates).toBe(0);
      expect(sorted(server.missing(ids))).toEqual(expect.arrayContaining(sorted(claimed)));
      for (const id of server.missing(ids)) expect([...claimed, ...sending]).toContain(id);

      // 3. Once the heartbeat has expired: the claimed ones are sent, the sending ones are in doubt
      //    (the server may or may not have them) and not sent again.
      const waitedMs = await outliveHeartbeats(client, keyPrefix, batchId, dead.owners);
      const resumed = await mailer(server, keyPrefix).sendBatch(cursor(ids), { id: batchId, build: buildMessage });
      note('re-run after the heartbeat', { waitedMs, ...resumed, failures: undefined });
      expect(resumed).toMatchObject({ total: N, failed: 0, sent: claimed.length, inDoubt: sending.length, skipped: N - claimed.length - sending.length, pending: 0 });
      expect(sorted(resumed.inDoubtIds)).toEqual(sorted(sending));
      expect(server.counts().duplicates).toBe(0);
      const lost = server.missing(ids);
      for (const id of lost) expect(resumed.inDoubtIds).toContain(id);

      // 4. With resendInDoubt, the in-doubt ones go again: every message has arrived, and only an
      //    in-doubt one may have arrived twice.
      const resent = await mailer(server, keyPrefix).sendBatch(cursor(ids), { id: batchId, build: buildMessage, resendInDoubt: true });
      expect(resent).toMatchObject({ total: N, failed: 0, inDoubt: 0, sent: sending.length, skipped: N - sending.length });
      expect(server.missing(ids)).toEqual([]);
      expect(server.counts().unique).toBe(N);
      const twice = duplicated(server);
      note('resendInDoubt', { ...resent, failures: undefined, lostBeforeResend: lost, arrivedTwice: twice });
      for (const id of twice) expect(sending).toContain(id);
      // An in-doubt message arrived twice exactly when the server had it before the resend.
      expect(twice).toEqual(sorted(sending.filter((id) => !lost.includes(id))));
      expect(server.counts().duplicates).toBe(twice.length);
    },
    LEDGER_LEASE_MS + 60_000,
  );

  it('two processes running the same batch at once deliver each message exactly once', async () => {
    const server = await smtp();
    const keyPrefix = uniquePrefix();
    redis(keyPrefix);
    const config: BatchChildConfig = { redis: REDIS_URL, keyPrefix, batchId: 'twins', smtp: { host: server.host, port: server.port }, n: N, waitForGo: true };
    const children = [startChild(config), startChild(config)];
    await Promise.all(children.map((child) => child.ready));
    for (const child of children) child.go();
    const [a, b] = (await Promise.all(children.map((child) => child.report))) as [BatchReport, BatchReport];
    note('twins', { a: { ...a, failures: undefined }, b: { ...b, failures: undefined } });

    expect(server.counts()).toMatchObject({ unique: N, duplicates: 0 });
    expect(server.missing(batchIds(N))).toEqual([]);
    expect(a.sent + b.sent).toBe(N);
    expect(a.skipped + b.skipped).toBe(N);
    expect(Math.min(a.sent, b.sent)).toBeGreaterThan(0);
    expect(a.failed + b.failed + a.inDoubt + b.inDoubt).toBe(0);
  });
});
