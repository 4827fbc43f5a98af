/**
 * One measured run in a process of its own, for A/B comparisons that `npm run bench` does not make
 * (two builds of mailpacer, or raw nodemailer with another module loaded beside it):
 *
 *   node --expose-gc --import tsx bench/ab-one.ts <contender> [measured=20000] [warm-up=20000]
 *
 * contender: `raw` (nodemailer's pool, 8 connections, 64 messages in flight), `raw+<module>` (the
 * same after importing <module>, such as `raw+ioredis`), `raw-8x1` (eight pools of one connection
 * each, mailpacer's shape; 64 messages in flight, 8 on each), or the absolute path of a mailpacer
 * build's `dist/index.js` inside this checkout (sendBatch, 8 connections, concurrency 64, memory mode). It starts smtp-sink,
 * sends the warm-up (unmeasured), then the measured messages through a fresh sender, and prints
 * one JSON line: msg/s and CPU µs per message (user + system, and each apart). Interleave several contenders over several rounds:
 *
 *   for r in 1 2 3; do for c in raw raw+ioredis; do node --expose-gc --import tsx bench/ab-one.ts $c; done; done
 *
 * With `AB_ALLOC=<rows>` set, the measured run also samples what it allocates (V8's sampling heap
 * profiler, one sample per 4 KiB, objects the GC collected included) and prints bytes allocated per
 * message: in all, by area (nodemailer, mailpacer, each Node module, native code; as profile-split.ts) and for the
 * <rows> functions that allocate most. The profiler slows the run: its msg/s and CPU then mean nothing.
 */
import { Session } from 'node:inspector/promises';
import { makeMessages } from './lib/messages.js';
import { area, functionKey } from './lib/profile-areas.js';
import { startSink } from './lib/sink.js';
import { collectGarbage } from './lib/timing.js';
import { batch, contenders, eightSinglePools, mailer } from './scenarios/unthrottled-contenders.js';

const [contender = 'raw', measured = '20000', warmup = '20000'] = process.argv.slice(2);

if (contender.startsWith('raw+')) await import(contender.slice(4));

/** Set by AB_ALLOC: sample the measured run's allocations and print this many functions. */
const allocationRows = process.env.AB_ALLOC === undefined ? undefined : Number(process.env.AB_ALLOC) || 20;

async function once(count: number, tag: string, sample = false): Promise<{ perSecond: number; cpuMicrosPerMessage: number; userMicrosPerMessage: number; systemMicrosPerMessage: number }> {
  const sink = await startSink();
  const messages = makeMessages(tag, count);
  let send: () => Promise<unknown>;
  let close: () => unknown;
  if (contender === 'raw' || contender.startsWith('raw+')) {
    // The unthrottled scenario's baseline, as it is.
    const raw = await contenders.find((c) => c.key === 'nodemailer-64')!.setup(sink, '');
    send = () => raw.send(messages);
    close = () => raw.close();
  } else if (contender === 'raw-8x1') {
    const raw = eightSinglePools(sink);
    send = () => raw.send(messages);
    close = () => raw.close();
  } else {
    const { createMailer } = (await import(contender)) as typeof import('../src/index.js');
    const m = await mailer(sink, undefined, createMailer);
    send = () => batch(m, messages);
    close = () => m.close();
  }
  collectGarbage();
  const sampling = sample ? await startSampling() : undefined;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await send();
  const ms = performance.now() - t0;
  const { user, system } = process.cpuUsage(cpu);
  if (sampling) printAllocations(await sampling.stop(), count, allocationRows!);
  await close();
  const received = await sink.stop();
  if (received !== null && received !== count) throw new Error(`the receiver counted ${received} of ${count}`);
  return { perSecond: count / (ms / 1000), cpuMicrosPerMessage: (user + system) / count, userMicrosPerMessage: user / count, systemMicrosPerMessage: system / count };
}

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

async function startSampling(): Promise<{ stop(): Promise<SamplingNode> }> {
  const session = new Session();
  session.connect();
  // Both include flags: without them the profile holds only what is still alive when it stops.
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
  return {
    async stop() {
      const { profile } = await session.post('HeapProfiler.stopSampling');
      session.disconnect();
      return profile.head as unknown as SamplingNode;
    },
  };
}

function printAllocations(head: SamplingNode, count: number, rows: number): void {
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  const add = (map: Map<string, number>, key: string, bytes: number) => map.set(key, (map.get(key) ?? 0) + bytes);
  const walk = (node: SamplingNode) => {
    total += node.selfSize;
    add(byArea, area(node.callFrame.url, node.callFrame.functionName), node.selfSize);
    add(byFunction, functionKey(node.callFrame), node.selfSize);
    for (const child of node.children) walk(child);
  };
  walk(head);
  const perMessage = (bytes: number) => Math.round(bytes / count);
  const top = (map: Map<string, number>, rows: number) => [...map].sort((a, b) => b[1] - a[1]).slice(0, rows).map(([key, bytes]) => ({ [key]: perMessage(bytes) }));
  console.log(JSON.stringify({ contender, allocatedBytesPerMessage: perMessage(total), byArea: top(byArea, 8), byFunction: top(byFunction, rows) }, null, 1));
}

if (Number(warmup) > 0) await once(Number(warmup), `ab-w-${Date.now()}`);
const figures = await once(Number(measured), `ab-m-${Date.now()}`, allocationRows !== undefined);
console.log(JSON.stringify({ contender, ...figures }));
process.exit(0);
