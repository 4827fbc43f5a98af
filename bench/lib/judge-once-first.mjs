// A diagnostic preload for bench/burst-gc.ts (docs/benchmarks.md, "Two speeds of send() all at once"):
//
//   node --import tsx bench/burst-gc.ts --sites --v8=--import=./bench/lib/judge-once-first.mjs
//
// Before the benchmark's child starts, it has V8 judge the allocation site of Node's
// EventEmitter.once() state while nearly all of its objects are dead: 10,000 short-lived once()
// listeners (one in 40 kept) and a young collection after each 2,000 (needs --expose-gc, which the
// child has). V8 then marks the site "don't tenure", as a process that has used once() before
// would have it.
import { EventEmitter } from 'node:events';

const gc = globalThis.gc;
const kept = [];
for (let round = 0; round < 5; round++) {
  for (let i = 0; i < 2000; i++) {
    const e = new EventEmitter();
    e.once('x', () => {});
    if (i % 40 === 0) kept.push(e);
  }
  gc({ type: 'minor' });
}
globalThis.__judgeOnceFirstKept = kept;
