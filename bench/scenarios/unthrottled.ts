/**
 * Unthrottled overhead: a receiver that takes everything at once, no limits configured. What does
 * mailpacer's pacing machinery (lanes, limiter, retry loop, batch) cost against nodemailer's pool
 * on its own, in throughput and in client CPU per message?
 *
 * Receiver: Postfix's `smtp-sink` in its own process (or, without it, the test server with no
 * limits in a child process), a fresh one per run. Every contender uses 8 connections, and every
 * run is a process of its own (unthrottled-child.ts), warmed up first.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { deleteKeys, redisServerPid } from '../lib/redis.js';
import type { Goal, Row, ScenarioOptions, ScenarioResult } from '../lib/report.js';
import { sinkKind, startSink } from '../lib/sink.js';
import { withinCap } from '../lib/timing.js';
import type { ChildFigures, ChildRun } from './unthrottled-child.js';
import { BATCH_CONCURRENCY, CONNECTIONS, contenders, MEMORY_GOAL, REDIS_GOAL, type Contender } from './unthrottled-contenders.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./unthrottled-child.ts', import.meta.url));

interface RunFigures {
  round: number;
  n: number;
  elapsedMs: number;
  perSecond: number;
  cpuMicrosPerMessage: number;
  redisCpuMicrosPerMessage: number | undefined;
  received: number | null;
}

/**
 * One run of one contender in a fresh process: a user's application runs either nodemailer or
 * mailpacer, not both, and contenders sharing a process share JIT feedback (nodemailer's code
 * compiled for mailpacer's calls runs raw nodemailer's calls too). The process warms up first.
 */
async function runOnce(contender: Contender, n: number, warmup: number, tag: string, prefix: string, redisPid: number | undefined, capMs: number): Promise<Omit<RunFigures, 'round'>> {
  const sink = await startSink();
  const config: ChildRun = { key: contender.key, host: sink.host, port: sink.port, warmup, n, tag, prefix, redisPid };
  // BENCH_GC_BEFORE_WARMUP and BENCH_HOLD are bench/burst-gc.ts's diagnostic switches: never inherited here.
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD_SCRIPT, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BENCH_GC_BEFORE_WARMUP: undefined, BENCH_HOLD: undefined },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = new Promise<string | undefined>((resolve) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    void exited.then(() => resolve(undefined));
  });
  let result: Awaited<ReturnType<typeof withinCap<string | undefined>>>;
  let received: number | null;
  try {
    result = await withinCap(line, capMs);
    if (result.timedOut) child.kill('SIGKILL');
    await exited;
  } finally {
    received = await sink.stop();
    if (contender.redis) await Promise.all([deleteKeys(`${prefix}:*`), deleteKeys(`${prefix}-w:*`)]).catch(() => 0);
  }
  if (result.timedOut) throw new Error(`${contender.label}: did not finish ${warmup} + ${n} messages within ${capMs / 1000} s`);
  if (!result.value) throw new Error(`${contender.label}: the child process failed: ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  const figures = JSON.parse(result.value) as ChildFigures;
  if (received !== null && received !== warmup + n) throw new Error(`${contender.label}: the receiver counted ${received} messages, expected ${warmup + n}`);
  return {
    n,
    elapsedMs: figures.elapsedMs,
    perSecond: n / (figures.elapsedMs / 1000),
    cpuMicrosPerMessage: figures.cpuMicros / n,
    redisCpuMicrosPerMessage: figures.redisCpuMicros === undefined ? undefined : figures.redisCpuMicros / n,
    received,
  };
}

/** The raw nodemailer contender every other is compared with: the same pool, 64 messages in flight, as mailpacer's batch. */
const REFERENCE = 'nodemailer-64';

/**
 * One round's order of runs: the reference before and after every other contender, so that each is
 * compared with the raw nodemailer runs next to it in time. This machine's speed drifts by tens of
 * per cent within minutes (raw nodemailer's own CPU per message went 559 → 466 → 363 µs in three
 * rounds of one run, with nothing else running in the VM), so a reference measured minutes away
 * would say more about the drift than about the contender.
 */
export function roundSchedule(keys: readonly string[]): string[] {
  const schedule = [REFERENCE];
  for (const key of keys) if (key !== REFERENCE) schedule.push(key, REFERENCE);
  return schedule;
}

/** The mean throughput and CPU of the reference runs next to position `at` of a round (before and after). */
function flanking(round: Array<{ key: string; figures: Omit<RunFigures, 'round'> }>, at: number): { perSecond: number; cpu: number } {
  const near = [round.slice(0, at).findLast((r) => r.key === REFERENCE), round.slice(at + 1).find((r) => r.key === REFERENCE)].filter((r) => r !== undefined);
  return {
    perSecond: near.reduce((sum, r) => sum + r.figures.perSecond, 0) / near.length,
    cpu: near.reduce((sum, r) => sum + r.figures.cpuMicrosPerMessage, 0) / near.length,
  };
}

export async function runUnthrottled(options: ScenarioOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const n = options.quick ? 2_000 : 20_000;
  // Seven rounds: with five, the median moved by 0.03 between two runs of the same code (0.899 and
  // 0.926 for send(), docs/benchmarks.md); single rounds range from about 0.8 to 1.2.
  const rounds = options.quick ? 1 : 7;
  // Each run sends this many first in its own process, unmeasured: mailpacer's paths take longer to
  // reach their compiled speed than raw nodemailer's (measured: docs/benchmarks.md).
  const warmup = n;
  // 250 messages/s at the very least, and the process's start. (It was 1,000/s: on a machine where
  // raw nodemailer ran at 946 msg/s, the ledger row, at about 0.7 of that, hit the cap.)
  const capMs = 20_000 + 4 * (warmup + n);
  const redisPid = await redisServerPid();
  const runs = new Map<string, RunFigures[]>(contenders.map((c) => [c.key, []]));
  /** Per contender and round: msg/s and CPU/msg against the reference runs beside it. */
  const ratios = new Map<string, number[]>(contenders.map((c) => [c.key, []]));
  const cpuRatios = new Map<string, number[]>(contenders.map((c) => [c.key, []]));
  const schedule = roundSchedule(contenders.map((c) => c.key));

  for (let round = 1; round <= rounds; round++) {
    const done: Array<{ key: string; figures: Omit<RunFigures, 'round'> }> = [];
    for (const [i, key] of schedule.entries()) {
      const contender = contenders.find((c) => c.key === key)!;
      const tag = `${options.runId}-ut-${round}-${i}-${key}`;
      const figures = await runOnce(contender, n, warmup, tag, tag, redisPid, capMs);
      done.push({ key, figures });
      runs.get(key)!.push({ round, ...figures });
      options.log(`unthrottled: round ${round}: ${contender.label}: ${Math.round(figures.perSecond)} msg/s, ${Math.round(figures.cpuMicrosPerMessage)} µs CPU/msg`);
    }
    for (const [i, { key, figures }] of done.entries()) {
      if (key === REFERENCE) continue;
      const reference = flanking(done, i);
      ratios.get(key)!.push(figures.perSecond / reference.perSecond);
      cpuRatios.get(key)!.push(reference.cpu / figures.cpuMicrosPerMessage);
    }
  }

  // The goal is on the median over rounds of each contender's ratio to the reference runs beside it.
  const rows: Row[] = [];
  const goals: Goal[] = [];
  for (const contender of contenders) {
    const mine = runs.get(contender.key)!;
    const isReference = contender.key === REFERENCE;
    const own = ratios.get(contender.key)!;
    const ratio = isReference ? 1 : median(own);
    const cpu = median(mine.map((r) => r.cpuMicrosPerMessage));
    const pass = contender.goal === undefined ? undefined : ratio >= contender.goal;
    const redisCpu = mine.map((r) => r.redisCpuMicrosPerMessage).filter((v): v is number => v !== undefined && Number.isFinite(v));
    rows.push({
      contender: contender.label,
      messages: n,
      perSecond: median(mine.map((r) => r.perSecond)),
      ratio,
      cpu,
      cpuRatio: isReference ? 1 : median(cpuRatios.get(contender.key)!),
      redisCpu: contender.redis && redisCpu.length > 0 ? median(redisCpu) : null,
      rounds: isReference ? mine.map((r) => Math.round(r.perSecond)).join(' / ') : mine.map((r, i) => `${Math.round(r.perSecond)} (${own[i]!.toFixed(2)})`).join(' / '),
      goal: pass === undefined ? (isReference ? 'reference' : contender.baseline ? 'baseline' : 'info') : `${pass ? 'PASS' : 'FAIL'} (${decisive(ratio, contender.goal!)} ${pass ? '≥' : '<'} ${contender.goal})`,
    });
    if (pass !== undefined) {
      goals.push({
        contender: contender.label,
        goal: `≥ ${contender.goal} of raw nodemailer's throughput`,
        actual: `median of ${rounds} round(s) ${decisive(ratio, contender.goal!)} × raw nodemailer (rounds ${own.map((r) => r.toFixed(3)).join(', ')}); ${Math.round(median(mine.map((r) => r.perSecond)))} msg/s, ${Math.round(cpu)} µs CPU/msg`,
        pass,
      });
    }
  }

  const kind = sinkKind();
  return {
    name: 'unthrottled',
    title: `Unthrottled overhead: ${CONNECTIONS} connections to a receiver that accepts everything (${n.toLocaleString('en-US')} messages)`,
    setup: [
      kind === 'smtp-sink'
        ? "Receiver: Postfix's smtp-sink (`smtp-sink -c -u nobody 127.0.0.1:<free port> 256`), a fresh process per run, started and stopped by PID; its `mesg=` counter confirms every message arrived."
        : 'Receiver: FALLBACK — smtp-sink is not installed: startThrottlingSmtpServer() with no limits in a separate child process (bench/lib/sink-child.ts), a fresh one per run.',
      'mailpacer runs from its built package (dist/, made by `npm run build`, which `npm run bench` runs first), as users run it; nodemailer from its published JavaScript.',
      `Each run is a fresh Node.js process (bench/scenarios/unthrottled-child.ts) that sends ${warmup.toLocaleString('en-US')} messages unmeasured (JIT warm-up) and then ${n.toLocaleString('en-US')} measured, through a fresh sender, after a full GC: a user's application runs nodemailer or mailpacer, not both, and contenders sharing a process would share nodemailer's JIT feedback.`,
      `${rounds} round(s). In each, raw nodemailer (64 at a time, the reference) runs before and after every other contender: ${schedule.join(', ')}. "× raw nodemailer": the median over rounds of the contender's msg/s ÷ the mean msg/s of the two reference runs beside it (the goal is on this); "raw CPU/msg ÷ this": the same with CPU per message; msg/s and CPU/msg: the median of the contender's runs; "msg/s per round" gives each run and its ratio.`,
      ...contenders.map((c) => `${c.label}: ${c.settings}.`),
      'msg/s = N / (first send → last settle); CPU/msg = the sending process\'s user+system CPU over the same interval ÷ N (the receiver runs in another process).',
      'The client is CPU-bound on one thread, so "raw CPU/msg ÷ this" predicts the throughput ratio on a quiet machine and is less disturbed by other load than msg/s (information only; the goal is on msg/s).',
      'Redis CPU/msg: the redis-server process\'s CPU over the measured run ÷ N, from /proc (10 ms resolution; the Redis instance is shared with whatever else runs on the machine, so it is an upper bound).',
    ],
    columns: [
      { key: 'contender', label: 'contender' },
      { key: 'messages', label: 'messages' },
      { key: 'perSecond', label: 'msg/s' },
      { key: 'ratio', label: '× raw nodemailer', digits: 3 },
      { key: 'cpu', label: 'client CPU µs/msg' },
      { key: 'cpuRatio', label: 'raw CPU/msg ÷ this', digits: 2 },
      { key: 'redisCpu', label: 'Redis CPU µs/msg' },
      { key: 'rounds', label: 'msg/s per round' },
      { key: 'goal', label: 'goal' },
    ],
    rows,
    goals,
    notes: [`Goals: mailpacer in memory mode ≥ ${MEMORY_GOAL} of raw nodemailer's throughput (both the sendBatch and the send() row); on Redis ≥ ${REDIS_GOAL} (the row without a batch id; the ledger row is for information).`],
    durationMs: Date.now() - started,
    raw: { receiver: kind, warmup, schedule, rounds: Object.fromEntries(runs), ratios: Object.fromEntries(ratios), cpuRatios: Object.fromEntries(cpuRatios) },
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * A ratio with three decimals, or as many more as it takes to show which side of the goal it is on:
 * a median of 0.89966 against 0.9 reads 0.8997, not 0.900 beside a FAIL.
 */
export function decisive(ratio: number, goal: number): string {
  for (let digits = 3; digits < 8; digits++) {
    const shown = ratio.toFixed(digits);
    if (Number(shown) >= goal === ratio >= goal) return shown;
  }
  return String(ratio);
}
