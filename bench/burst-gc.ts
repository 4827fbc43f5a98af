/**
 * Garbage collection in the unthrottled scenario's runs, one fresh process each, as `npm run bench`
 * makes them (bench/scenarios/unthrottled-child.ts: 20,000 messages of warm-up, then 20,000
 * measured after a full GC), with V8's `--trace-gc` on:
 *
 *   node --import tsx bench/burst-gc.ts [--runs 6] [--contender mailpacer-send] [--gc-before-warmup] [--v8=<flag>]...
 *
 * For each run it prints msg/s and CPU per message of the measured messages, and the main thread's
 * collections over them: scavenges (count, total pause), mark-compacts (count, pause and
 * incremental marking), and how much each scavenge left in the heap on average (what it promoted
 * or kept). `--gc-before-warmup` makes the child collect garbage before its warm-up too (a
 * diagnostic switch of unthrottled-child.ts, off in `npm run bench`); `--v8` passes a V8 flag to the
 * child (`--v8=--no-allocation-site-pretenuring`).
 *
 * Written to find why `send()` with 20,000 messages at once ran in two speeds (docs/benchmarks.md,
 * "Two speeds of send() all at once").
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSink } from './lib/sink.js';
import type { ChildFigures, ChildRun } from './scenarios/unthrottled-child.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./scenarios/unthrottled-child.ts', import.meta.url));
const N = 20_000;

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '6' },
    contender: { type: 'string', default: 'mailpacer-send' },
    'gc-before-warmup': { type: 'boolean', default: false },
    v8: { type: 'string', multiple: true, default: [] },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${JSON.stringify(values.runs)}`);

interface Collections {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
  markCompactMs: number;
  incrementalMs: number;
  /** Mean growth of the heap's used size over a scavenge's interval (MB): what it kept, plus what went straight to old space. */
  keptMbPerScavenge: number;
}

/** Sums the main thread's collections after the last forced one (the GC before the measured run). */
function collections(trace: string): Collections {
  const lines = trace.split('\n');
  const forced = lines.findLastIndex((line) => / testing[;, ]/.test(line) || line.endsWith(' testing'));
  if (forced < 0) throw new Error('no forced GC ("testing") in the trace: was --trace-gc passed?');
  const isolate = lines[forced]!.slice(0, lines[forced]!.indexOf(']') + 1);
  const out: Collections = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0, incrementalMs: 0, keptMbPerScavenge: 0 };
  let previousAfter: number | undefined;
  let kept = 0;
  for (const line of lines.slice(forced + 1)) {
    if (!line.startsWith(isolate)) continue;
    const sizes = /: (Scavenge|Mark-Compact)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, ([\d.]+) \//.exec(line);
    if (!sizes) continue;
    const [, kind, , after, pause] = sizes;
    if (kind === 'Scavenge') {
      out.scavenges++;
      out.scavengeMs += Number(pause);
      if (previousAfter !== undefined) kept += Number(after) - previousAfter;
    } else {
      out.markCompacts++;
      out.markCompactMs += Number(pause);
      out.incrementalMs += Number(/\+ ([\d.]+) ms in/.exec(line)?.[1] ?? 0);
    }
    previousAfter = kind === 'Scavenge' ? Number(after) : undefined;
  }
  out.keptMbPerScavenge = out.scavenges > 1 ? kept / (out.scavenges - 1) : 0;
  return out;
}

async function once(index: number): Promise<ChildFigures & Collections> {
  const sink = await startSink();
  try {
    const run: ChildRun = { key: values.contender, host: sink.host, port: sink.port, warmup: N, n: N, tag: `gc${index}`, prefix: `burst-gc-${process.pid}-${index}`, redisPid: undefined };
    const child = spawn(process.execPath, ['--expose-gc', '--trace-gc', ...values.v8, '--import', 'tsx', CHILD_SCRIPT, JSON.stringify(run)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...(values['gc-before-warmup'] && { BENCH_GC_BEFORE_WARMUP: '1' }) },
    });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const figures = stdout.split('\n').findLast((line) => line.startsWith('{'));
    if (code !== 0 || !figures) throw new Error(`run ${index}: the child exited with ${code}`);
    return { ...(JSON.parse(figures) as ChildFigures), ...collections(stdout) };
  } finally {
    await sink.stop();
  }
}

const flags = [values['gc-before-warmup'] && '--gc-before-warmup', ...values.v8].filter(Boolean).join(' ') || 'none';
console.log(`${values.contender}, ${runs} run(s), ${N} measured after ${N} of warm-up; extra: ${flags}`);
console.log('run | msg/s | CPU µs/msg | scavenges | scavenge ms | MB kept per scavenge | mark-compacts | mark-compact ms (+ incremental)');
for (let i = 1; i <= runs; i++) {
  const r = await once(i);
  const f = (x: number, d = 0) => x.toFixed(d);
  console.log(`${i} | ${f(N / (r.elapsedMs / 1000))} | ${f(r.cpuMicros / N)} | ${r.scavenges} | ${f(r.scavengeMs)} | ${f(r.keptMbPerScavenge, 2)} | ${r.markCompacts} | ${f(r.markCompactMs)} (+${f(r.incrementalMs)})`);
}
