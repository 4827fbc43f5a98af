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
 * one JSON line: msg/s and CPU µs per message. Interleave several contenders over several rounds:
 *
 *   for r in 1 2 3; do for c in raw raw+ioredis; do node --expose-gc --import tsx bench/ab-one.ts $c; done; done
 */
import { makeMessages } from './lib/messages.js';
import { startSink } from './lib/sink.js';
import { collectGarbage, cpuMicros } from './lib/timing.js';
import { batch, contenders, eightSinglePools, mailer } from './scenarios/unthrottled-contenders.js';

const [contender = 'raw', measured = '20000', warmup = '20000'] = process.argv.slice(2);

if (contender.startsWith('raw+')) await import(contender.slice(4));

async function once(count: number, tag: string): Promise<{ perSecond: number; cpuMicrosPerMessage: number }> {
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
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await send();
  const ms = performance.now() - t0;
  const used = cpuMicros(cpu);
  await close();
  const received = await sink.stop();
  if (received !== null && received !== count) throw new Error(`the receiver counted ${received} of ${count}`);
  return { perSecond: count / (ms / 1000), cpuMicrosPerMessage: used / count };
}

if (Number(warmup) > 0) await once(Number(warmup), `ab-w-${Date.now()}`);
const figures = await once(Number(measured), `ab-m-${Date.now()}`);
console.log(JSON.stringify({ contender, ...figures }));
process.exit(0);
