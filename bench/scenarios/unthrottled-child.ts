/**
 * One run of one unthrottled-overhead contender, in a process of its own (see unthrottled.ts):
 *
 *   node --expose-gc --import tsx bench/scenarios/unthrottled-child.ts '<json ChildRun>'
 *
 * It sends `warmup` messages (unmeasured: the JIT compiles the paths), then `n` through a fresh
 * sender, measured, and prints one JSON line with the figures.
 */
import { makeMessages } from '../lib/messages.js';
import { processCpuMicros } from '../lib/machine.js';
import { collectGarbage, cpuMicros } from '../lib/timing.js';
import { contenders } from './unthrottled-contenders.js';

export interface ChildRun {
  key: string;
  host: string;
  port: number;
  warmup: number;
  n: number;
  tag: string;
  /** Redis key prefix of the measured run; the warm-up uses `${prefix}-w`. */
  prefix: string;
  redisPid: number | undefined;
}

export interface ChildFigures {
  elapsedMs: number;
  cpuMicros: number;
  redisCpuMicros: number | undefined;
  /**
   * For bench/burst-gc.ts, which reads them against V8's `--trace-gc` lines (performance.now()):
   * when the warm-up's `send(messages)` returned (for `send()` all at once, every message queued),
   * and when the full GC before the measured run ended (the "testing" line of the trace).
   */
  warmupQueuedAt: number | undefined;
  gcEndedAt: number;
}

const run = JSON.parse(process.argv[2] ?? '{}') as ChildRun;
const contender = contenders.find((c) => c.key === run.key);
if (!contender) throw new Error(`unknown contender ${JSON.stringify(run.key)}`);
const receiver = { host: run.host, port: run.port };

let warmupQueuedAt: number | undefined;
if (run.warmup > 0) {
  const warm = await contender.setup(receiver, `${run.prefix}-w`);
  const warmMessages = makeMessages(`${run.tag}-w`, run.warmup);
  // A diagnostic switch of bench/burst-gc.ts, never set by `npm run bench`: a full GC before the
  // warm-up too, so that its first collections fall at the same points in every run.
  if (process.env.BENCH_GC_BEFORE_WARMUP === '1') collectGarbage();
  const sending = warm.send(warmMessages);
  warmupQueuedAt = performance.now();
  await sending;
  await warm.close();
}

const sender = await contender.setup(receiver, run.prefix);
const messages = makeMessages(run.tag, run.n);
collectGarbage();
const gcEndedAt = performance.now();
const redisBefore = contender.redis ? processCpuMicros(run.redisPid) : undefined;
const cpu = process.cpuUsage();
const t0 = performance.now();
await sender.send(messages);
const figures: ChildFigures = {
  elapsedMs: performance.now() - t0,
  cpuMicros: cpuMicros(cpu),
  redisCpuMicros: redisBefore === undefined ? undefined : (processCpuMicros(run.redisPid) ?? Number.NaN) - redisBefore,
  warmupQueuedAt,
  gcEndedAt,
};
await sender.close();
process.stdout.write(`${JSON.stringify(figures)}\n`);
// bench/burst-gc.ts --sites (a diagnostic switch, never set by `npm run bench`): the process waits
// to be killed, so that gdb can read V8's allocation sites in it.
if (process.env.BENCH_HOLD === '1') await new Promise(() => setInterval(() => {}, 60_000));
// Anything a contender left behind (a timer) must not keep the process alive.
process.exit(0);
