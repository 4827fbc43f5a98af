/**
 * How many rate grants per second one process gets out of one Redis, against two baselines, in one
 * run against the same Redis:
 *
 *   (a) mailpacer's Redis limiter: `concurrency` loops of `await lane.reserve()` on one lane whose
 *       window never binds (1e9/s), so every call is one grant and the cost is the round trip
 *       plus the script (`reserve-2.lua`);
 *   (b) raw ioredis `INCR` round trips, the same number of loops: the ceiling of one connection;
 *   (c) Bottleneck's clustered limiter (`datastore: 'ioredis'`, `maxConcurrent: null`,
 *       `minTime: 0`), the same number of loops of `await limiter.schedule(job)`: jobs/s.
 *
 * Redis calls are counted on the client (every command ioredis sends through `sendCommand`), so
 * other users of the same Redis do not skew them.
 *
 *   npx tsx bench/redis-grants.ts [--seconds 5] [--concurrency 50] [--redis redis://127.0.0.1:6379] [--note "..."]
 *   npx tsx bench/redis-grants.ts --render     # rewrites the markdown from the JSON, runs nothing
 *
 * Prints a table, appends the run to `bench/results/redis-grants.json` (the last 10 runs are kept)
 * and writes `bench/results/redis-grants.md` from them.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Bottleneck from 'bottleneck';
import { Redis } from 'ioredis';
import { createRedisLimiter, laneKeys, type RedisLike } from '../src/limiter/redis.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '50' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    /** What the load figures do not show (another process busy during the run, ...): printed with the run. */
    note: { type: 'string' },
    render: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const WARMUP_SECONDS = Number(args.warmup);
const CONCURRENCY = Number(args.concurrency);
const REDIS_URL = args.redis;
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');

interface Scenario {
  name: string;
  what: string;
  /** Operations (grants, INCRs, jobs) per second over the measured seconds. */
  opsPerSecond: number;
  /** Redis commands sent per operation, counted on the client. */
  callsPerOp: number;
  /** Latency of one operation as its loop saw it, in ms. */
  p50Ms: number;
  p99Ms: number;
  operations: number;
  loadBefore: number;
}

/** Counts the commands an ioredis client sends (scripts included: EVALSHA, and EVAL after NOSCRIPT). */
function countCommands(client: Redis): { count: number } {
  const counter = { count: 0 };
  const original = client.sendCommand.bind(client);
  client.sendCommand = ((...params: Parameters<Redis['sendCommand']>) => {
    counter.count++;
    return original(...params);
  }) as Redis['sendCommand'];
  return counter;
}

/**
 * Runs `concurrency` loops of `op` for the warm-up, then for `seconds`, and counts the operations
 * that completed within the measured seconds and their latencies.
 */
async function drive(op: () => Promise<unknown>, counter: { count: number }): Promise<Omit<Scenario, 'name' | 'what' | 'loadBefore'>> {
  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  let operations = 0;
  const latencies: number[] = [];
  const loop = async () => {
    while (phase !== 'stop') {
      const started = performance.now();
      await op();
      if (phase === 'measure') {
        operations++;
        latencies.push(performance.now() - started);
      }
    }
  };
  const loops = Array.from({ length: CONCURRENCY }, loop);
  await sleep(WARMUP_SECONDS * 1000);
  phase = 'measure';
  const calls = counter.count;
  const started = performance.now();
  await sleep(SECONDS * 1000);
  phase = 'stop';
  const elapsed = (performance.now() - started) / 1000;
  const callsMeasured = counter.count - calls;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    opsPerSecond: operations / elapsed,
    // Calls sent while measuring over operations completed while measuring: the loops in flight at
    // each edge make this exact to within CONCURRENCY calls.
    callsPerOp: callsMeasured / operations,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    operations,
  };
}

async function mailpacerReserve(): Promise<Scenario> {
  const client = new Redis(REDIS_URL);
  const counter = countCommands(client);
  const keyPrefix = `mp-grants-${randomBytes(4).toString('hex')}`;
  const limiter = createRedisLimiter({ client: client as unknown as RedisLike, keyPrefix });
  const lane = limiter.lane('grants', { windows: [{ max: 1e9, perMs: 1_000, burst: 1 }], maxConnections: 1 });
  const loadBefore = load();
  try {
    const result = await drive(async () => {
      const { waitMs } = await lane.reserve();
      if (waitMs > 1) throw new Error(`the window bound (waitMs ${waitMs}): the benchmark would measure waiting, not grants`);
    }, counter);
    return { name: 'mailpacer reserve()', what: `\`lane.reserve()\`, GCRA window 1e9/s (never binds), ${CONCURRENCY} concurrent loops`, loadBefore, ...result };
  } finally {
    await limiter.close();
    const keys = laneKeys(keyPrefix, 'grants');
    await client.del(keys.tat, keys.state, keys.leases);
    await client.quit();
  }
}

async function rawIncr(): Promise<Scenario> {
  const client = new Redis(REDIS_URL);
  const counter = countCommands(client);
  const key = `mp-grants-${randomBytes(4).toString('hex')}:incr`;
  const loadBefore = load();
  try {
    const result = await drive(() => client.incr(key), counter);
    return { name: 'ioredis INCR', what: `raw \`INCR\` round trips, ${CONCURRENCY} concurrent loops`, loadBefore, ...result };
  } finally {
    await client.del(key);
    await client.quit();
  }
}

async function bottleneck(): Promise<Scenario> {
  const url = new URL(REDIS_URL);
  const id = `mp-grants-${randomBytes(4).toString('hex')}`;
  const limiter = new Bottleneck({
    datastore: 'ioredis',
    clientOptions: { host: url.hostname, port: Number(url.port || 6379) },
    id,
    maxConcurrent: null,
    minTime: 0,
    clearDatastore: true,
  });
  limiter.on('error', (error: unknown) => console.error('bottleneck:', error));
  const { client } = (await limiter.ready()) as { client: Redis };
  const counter = countCommands(client);
  const loadBefore = load();
  try {
    const result = await drive(() => limiter.schedule(async () => undefined), counter);
    return { name: 'Bottleneck (ioredis)', what: `\`limiter.schedule(job)\`, clustered, \`maxConcurrent: null, minTime: 0\`, ${CONCURRENCY} concurrent loops`, loadBefore, ...result };
  } finally {
    await limiter.disconnect(true);
    // Bottleneck's keys: b_<id>_settings, _job_weights, _job_expirations, _job_clients, ... (they also expire on their own).
    const cleaner = new Redis(REDIS_URL);
    const keys = await cleaner.keys(`b_${id}_*`);
    if (keys.length > 0) await cleaner.del(...keys);
    await cleaner.quit();
  }
}

interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  redisServer: string;
}

async function machine(): Promise<Machine> {
  const client = new Redis(REDIS_URL);
  const info = await client.info('server');
  await client.quit();
  return {
    nproc: Number(command('nproc')) || availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    // The version of the server measured (INFO), not of whatever binary is on the PATH.
    redisServer: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
  };
}

interface Run {
  date: string;
  command: string;
  machine: Machine;
  seconds: number;
  concurrency: number;
  loadavg: { before: number[]; after: number[] };
  scenarios: Scenario[];
  note?: string;
}

const JSON_PATH = join(RESULTS, 'redis-grants.json');
const MD_PATH = join(RESULTS, 'redis-grants.md');

function readHistory(): { runs: Run[] } {
  return existsSync(JSON_PATH) ? (JSON.parse(readFileSync(JSON_PATH, 'utf8')) as { runs: Run[] }) : { runs: [] };
}

async function main(): Promise<void> {
  if (args.render) {
    writeFileSync(MD_PATH, markdown(readHistory().runs));
    console.log(`wrote ${MD_PATH}`);
    return;
  }
  const before = loadavg();
  const scenarios: Scenario[] = [];
  for (const scenario of [mailpacerReserve, rawIncr, bottleneck]) {
    scenarios.push(await scenario());
    process.stderr.write(`done: ${scenarios.at(-1)!.name}\n`);
  }
  const run: Run = {
    date: new Date().toISOString(),
    command: `npx tsx bench/redis-grants.ts --seconds ${SECONDS} --concurrency ${CONCURRENCY}`,
    machine: await machine(),
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    loadavg: { before: before.map(round2), after: loadavg().map(round2) },
    scenarios,
    ...(args.note === undefined ? {} : { note: args.note }),
  };

  console.log(`\n${run.date}  ${run.machine.nproc} CPUs (${run.machine.cpu}), node ${run.machine.node}, redis-server ${run.machine.redisServer}`);
  console.log(`load average before ${run.loadavg.before.join(' ')}, after ${run.loadavg.after.join(' ')}\n`);
  console.table(
    scenarios.map((s) => ({
      scenario: s.name,
      'ops/s': Math.round(s.opsPerSecond),
      'Redis calls/op': round2(s.callsPerOp),
      'p50 ms': round2(s.p50Ms),
      'p99 ms': round2(s.p99Ms),
      '1-min load before': round2(s.loadBefore),
    })),
  );

  mkdirSync(RESULTS, { recursive: true });
  const history = readHistory();
  history.runs = [...history.runs, run].slice(-10);
  writeFileSync(JSON_PATH, `${JSON.stringify(history, null, 2)}\n`);
  writeFileSync(MD_PATH, markdown(history.runs));
  console.log(`\nwrote ${JSON_PATH} and ${MD_PATH}`);
}

function markdown(runs: readonly Run[]): string {
  const lines = [
    '# Redis grants per second',
    '',
    'Written by `bench/redis-grants.ts`; each run appends to `redis-grants.json` (the last 10 are kept) and rewrites this file.',
    '',
    'One process, one Redis. Each scenario runs its loops for a 1 s warm-up, then counts what completes in the measured seconds.',
    'Redis calls are counted on the client. "Load" is the 1-minute load average just before the scenario: the machine is shared, so read a run with a high load as a lower bound.',
    '',
  ];
  for (const run of runs) {
    const m = run.machine;
    lines.push(
      `## ${run.date}`,
      '',
      `- command: \`${run.command}\``,
      `- machine: ${m.nproc} CPUs (\`nproc\`), ${m.cpu}; node ${m.node}; redis-server ${m.redisServer}`,
      `- load average (1, 5, 15 min): before ${run.loadavg.before.join(', ')}; after ${run.loadavg.after.join(', ')}`,
      ...(run.note ? [`- note: ${run.note}`] : []),
      '',
      '| scenario | what | ops/s | Redis calls per op | p50 ms | p99 ms | load |',
      '|---|---|---:|---:|---:|---:|---:|',
      ...run.scenarios.map((s) => `| ${s.name} | ${s.what} | ${Math.round(s.opsPerSecond).toLocaleString('en-US')} | ${round2(s.callsPerOp)} | ${round2(s.p50Ms)} | ${round2(s.p99Ms)} | ${round2(s.loadBefore)} |`),
      '',
    );
  }
  return `${lines.join('\n')}`;
}

/** A command's output, trimmed, or '' when it cannot run. */
function command(file: string, ...params: string[]): string {
  try {
    return execFileSync(file, params, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const load = (): number => loadavg()[0]!;
const round2 = (n: number): number => Math.round(n * 100) / 100;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
