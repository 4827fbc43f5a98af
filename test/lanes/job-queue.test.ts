import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { JobQueue } from '../../src/lanes/job-queue.js';

interface TestJob {
  n: number;
  signal: AbortSignal | undefined;
  expires: number;
}

const job = (n: number, signal?: AbortSignal, expires = Infinity): TestJob => ({ n, signal, expires });

function queue() {
  const aborted: number[] = [];
  const q = new JobQueue<TestJob>((j) => aborted.push(j.n));
  return { q, aborted };
}

describe('JobQueue', () => {
  it('hands jobs out first in, first out, and a job put back goes first', () => {
    const { q } = queue();
    for (let n = 1; n <= 3; n++) q.push(job(n));
    const first = q.shift()!;
    expect(first.n).toBe(1);
    q.unshift(first);
    expect(q.size).toBe(3);
    expect(q.drain().map((j) => j.n)).toEqual([1, 2, 3]);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('keeps the order across many thousands of jobs taken and put back (the array is compacted on the way)', () => {
    const { q } = queue();
    const out: number[] = [];
    for (let n = 0; n < 5_000; n++) q.push(job(n));
    for (let n = 0; n < 3_000; n++) {
      const taken = q.shift()!;
      if (n % 1_000 === 999) q.unshift(taken);
      else out.push(taken.n);
    }
    for (let n = 5_000; n < 6_000; n++) q.push(job(n));
    out.push(...q.drain().map((j) => j.n));
    expect(out).toEqual(Array.from({ length: 6_000 }, (_, n) => n));
  });

  it('gives back the jobs that expired, and only those', () => {
    const { q } = queue();
    q.push(job(1, undefined, 100));
    q.push(job(2, undefined, 300));
    q.push(job(3, undefined, 200));
    expect(q.expired(200).map((j) => j.n)).toEqual([1, 3]);
    expect(q.size).toBe(1);
    expect(q.shift()!.n).toBe(2);
  });

  it('listens once per signal however many jobs share it, and keeps listening to one signal only once none waits', () => {
    const { q } = queue();
    const a = new AbortController();
    const b = new AbortController();
    const listeners = () => [getEventListeners(a.signal, 'abort').length, getEventListeners(b.signal, 'abort').length];
    for (let n = 0; n < 1_000; n++) q.push(job(n, a.signal));
    q.push(job(1_000, b.signal));
    expect(listeners()).toEqual([1, 1]);
    for (let n = 0; n < 1_000; n++) q.shift();
    expect(listeners()).toEqual([1, 1]); // a has no job left: kept for the next one
    q.push(job(1_001, a.signal));
    expect(listeners()).toEqual([1, 1]); // and reused
    q.drain();
    expect(listeners()).toEqual([1, 0]); // a emptied last (its job was behind b's): the one kept
    q.dispose();
    expect(listeners()).toEqual([0, 0]);
  });

  it('forgets a kept signal once it aborts, and gives up at once a job that comes with it later', () => {
    const { q, aborted } = queue();
    const a = new AbortController();
    q.push(job(1, a.signal));
    q.shift();
    a.abort();
    expect(aborted).toEqual([]);
    q.push(job(2, a.signal));
    expect(aborted).toEqual([2]);
    expect(q.size).toBe(0);
  });

  it('gives up every waiting job of a signal that aborts, and only those', () => {
    const { q, aborted } = queue();
    const a = new AbortController();
    const b = new AbortController();
    q.push(job(1, a.signal));
    q.push(job(2, b.signal));
    q.push(job(3, a.signal));
    q.push(job(4));
    const taken = q.shift()!; // job 1 is on its way: an abort does not reach it any more
    q.push(job(5, a.signal));
    a.abort();
    expect(taken.n).toBe(1);
    expect(aborted).toEqual([3, 5]);
    expect(q.drain().map((j) => j.n)).toEqual([2, 4]);
  });

  it('gives up at once a job whose signal has already aborted', () => {
    const { q, aborted } = queue();
    q.push(job(1, AbortSignal.abort()));
    q.unshift(job(2, AbortSignal.abort()));
    expect(aborted).toEqual([1, 2]);
    expect(q.size).toBe(0);
  });
});
