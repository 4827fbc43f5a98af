/**
 * What each message waiting to be sent holds in memory: 20,000 sends called at once (the
 * unthrottled scenario's "all at once" rows), the heap measured after a full GC before and right
 * after the calls, before any can finish, divided by 20,000 (each send's copy of its message
 * included; the benchmark's list of messages is made before the first measure).
 *
 *   node --expose-gc --import tsx bench/queued-memory.ts raw
 *   node --expose-gc --import tsx bench/queued-memory.ts /abs/path/of/a/build/dist/index.js
 *
 * `raw`: nodemailer's pool, 8 connections, `sendMail` for each; a build's path: mailpacer in
 * memory mode, 8 connections, `send()` for each. Both send to smtp-sink and wait for every message.
 */
import { forMailpacer, forNodemailer, makeMessages, type BenchMessage } from './lib/messages.js';
import { startSink } from './lib/sink.js';
import { mailer, pool } from './scenarios/unthrottled-contenders.js';

const [which = 'raw', count = '20000'] = process.argv.slice(2);
const n = Number(count);
const gc = globalThis.gc;
if (!gc) throw new Error('run with node --expose-gc');

const sink = await startSink();
let send: (message: BenchMessage) => Promise<unknown>;
let close: () => unknown;
if (which === 'raw') {
  const transport = pool(sink);
  send = (message) => transport.sendMail(forNodemailer(message));
  close = () => transport.close();
} else {
  const { createMailer } = (await import(which)) as typeof import('../src/index.js');
  const m = await mailer(sink, undefined, createMailer);
  send = (message) => m.send(forMailpacer(message));
  close = () => m.close();
}
// Warm-up: the code paths and the connections.
await Promise.all(makeMessages('queued-w', 2_000).map(send));
const messages = makeMessages('queued', n);
gc();
gc();
const before = process.memoryUsage().heapUsed;
const pending = messages.map(send);
gc();
gc();
const after = process.memoryUsage().heapUsed;
console.log(JSON.stringify({ contender: which, queued: n, bytesPerQueuedMessage: Math.round((after - before) / n) }));
await Promise.all(pending);
await close();
const received = await sink.stop();
if (received !== null && received !== n + 2_000) throw new Error(`the receiver counted ${received} of ${n + 2_000}`);
process.exit(0);
