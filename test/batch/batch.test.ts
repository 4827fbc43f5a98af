import { afterEach, describe, expect, it } from 'vitest';
import { createMailer, isBatchSourceError, isConfigError, type BatchReport, type Mailer, type MailerOptions, type ProgressEvent } from '../../src/index.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setup(serverOptions: Parameters<typeof startThrottlingSmtpServer>[0] = {}, options: Partial<MailerOptions> = {}): Promise<{ srv: ThrottlingSmtpServer; mailer: Mailer }> {
  const srv = await startThrottlingSmtpServer(serverOptions);
  cleanup.push(() => srv.close());
  const mailer = createMailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 4 } }, retry: { minDelay: '20ms', maxDelay: '200ms' }, ...options });
  cleanup.push(() => mailer.close());
  return { srv, mailer };
}

const subscribers = (n: number) => Array.from({ length: n }, (_, i) => ({ email: `reader${i}@example.net`, name: `Reader ${i}` }));
const build = (s: { email: string; name: string }) => ({ id: s.email, from: 'news@example.org', to: s.email, subject: 'November', text: `Hello ${s.name}` });

describe('sendBatch', () => {
  it('sends an array, a generator and an async generator', async () => {
    const { srv, mailer } = await setup();
    function* generate() {
      yield* subscribers(30).slice(10, 20);
    }
    async function* stream() {
      for (const s of subscribers(30).slice(20, 30)) {
        await new Promise((r) => setTimeout(r, 1));
        yield s;
      }
    }
    const reports = [
      await mailer.sendBatch(subscribers(10), { build }),
      await mailer.sendBatch(generate(), { build }),
      await mailer.sendBatch(stream(), { build }),
    ];
    expect(reports.map((r) => [r.total, r.sent, r.failed])).toEqual([
      [10, 10, 0],
      [10, 10, 0],
      [10, 10, 0],
    ]);
    expect(srv.counts()).toMatchObject({ unique: 30, duplicates: 0 });
  });

  it('pulls from the source only as fast as messages finish (bounded in progress)', async () => {
    const { mailer } = await setup({ latencyMs: 5 });
    let pulled = 0;
    let maxAhead = 0;
    let sent = 0;
    mailer.on('sent', () => sent++);
    async function* source() {
      for (let i = 0; i < 300; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - sent);
        yield { email: `r${i}@example.net`, name: `${i}` };
      }
    }
    const report = await mailer.sendBatch(source(), { build, concurrency: 20 });
    expect(report.sent).toBe(300);
    expect(maxAhead).toBeLessThanOrEqual(21);
  });

  it('pulls a synchronous source only as fast as messages finish, and every item once', async () => {
    const { srv, mailer } = await setup({ latencyMs: 2 });
    let pulled = 0;
    let maxAhead = 0;
    let settled = 0;
    mailer.on('sent', () => settled++);
    function* source() {
      for (let i = 0; i < 300; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - settled);
        yield { email: `s${i}@example.net`, name: `${i}` };
      }
    }
    const report = await mailer.sendBatch(source(), { build, concurrency: 20 });
    expect(report).toMatchObject({ total: 300, sent: 300, failed: 0 });
    expect(maxAhead).toBeLessThanOrEqual(21);
    expect(srv.counts()).toMatchObject({ unique: 300, duplicates: 0 });
  });

  it('rejects with a BatchSourceError holding the report when a synchronous source throws, once the messages it gave have settled', async () => {
    const { srv, mailer } = await setup({ latencyMs: 2 });
    const lost = new Error('cursor lost');
    function* source() {
      for (let i = 0; i < 50; i++) yield i === 7 ? { email: 'not an address', name: 'x' } : { email: `t${i}@example.net`, name: `${i}` };
      throw lost;
    }
    let sent = 0;
    mailer.on('sent', () => sent++);
    const progress: ProgressEvent[] = [];
    mailer.on('progress', (e) => progress.push(e));
    const error = await mailer.sendBatch(source(), { id: 'nov', build, concurrency: 8 }).catch((e: unknown) => e);
    expect(isBatchSourceError(error)).toBe(true);
    if (!isBatchSourceError(error)) return;
    expect(error.code).toBe('ERR_MAILPACER_BATCH_SOURCE');
    expect(error.cause).toBe(lost);
    expect(error.message).toBe('sendBatch stopped: the source threw after 50 items (49 sent, 1 failed); a re-run with batch id "nov" sends the rest: cursor lost');
    // Every item the source gave had settled before sendBatch rejected: none is left in flight.
    expect(sent).toBe(49);
    expect(error.report).toMatchObject({ id: 'nov', total: 50, sent: 49, failed: 1, pending: 0, aborted: false });
    expect(error.report.failures[0]).toMatchObject({ id: 'not an address', decision: 'permanent' });
    expect(error.report.durationMs).toBeGreaterThan(0);
    // The last progress event, emitted as it stopped, has the same counts.
    expect(progress.at(-1)).toMatchObject({ sent: 49, failed: 1 });
    expect(srv.counts()).toMatchObject({ unique: 49, duplicates: 0 });
  });

  it('rejects with a BatchSourceError holding the report when an async source rejects, and a re-run with the id sends the rest once', async () => {
    const { srv, mailer } = await setup({ latencyMs: 2 });
    let failAt = 30;
    async function* cursor() {
      for (const [i, s] of subscribers(60).entries()) {
        if (i === failAt) throw new Error('connection to the database lost');
        await new Promise((r) => setTimeout(r, 0));
        yield s;
      }
    }
    const error = await mailer.sendBatch(cursor(), { id: 'resume-me', build, concurrency: 8 }).catch((e: unknown) => e);
    expect(isBatchSourceError(error)).toBe(true);
    const report = (error as { report: BatchReport }).report;
    expect(report).toMatchObject({ total: 30, sent: 30, failed: 0, pending: 0 });
    expect((error as Error).message).toContain('connection to the database lost');
    failAt = Infinity;
    const again = await mailer.sendBatch(cursor(), { id: 'resume-me', build, concurrency: 8 });
    expect(again).toMatchObject({ total: 60, sent: 30, skipped: 30, failed: 0 });
    expect(srv.counts()).toMatchObject({ unique: 60, duplicates: 0 });
  });

  it('sends 2,000 in explicit waves', async () => {
    const { srv, mailer } = await setup();
    const started = Date.now();
    const report = await mailer.sendBatch(subscribers(2_000), { build, waveSize: 250, waveInterval: '500ms' });
    expect(report).toMatchObject({ total: 2_000, sent: 2_000, failed: 0 });
    expect(srv.counts()).toMatchObject({ unique: 2_000, duplicates: 0 });
    // Eight waves of 250 (readers 0–249, 250–499, …): no message of wave k before k intervals
    // after the batch started. Lower bounds only: a slow machine stretches a wave, never shortens one.
    const firstOfWave = Array.from({ length: 8 }, () => Infinity);
    for (const message of srv.accepted) {
      const wave = Math.floor(Number(/reader(\d+)@/.exec(message.to[0]!)![1]) / 250);
      firstOfWave[wave] = Math.min(firstOfWave[wave]!, message.at);
    }
    for (const [wave, at] of firstOfWave.entries()) expect(at - started).toBeGreaterThanOrEqual(wave * 500 - 5);
  });

  it('fails a bad message alone: invalid address, a 550, a build that throws, an unknown provider', async () => {
    const { srv, mailer } = await setup({ script: [{ match: 'reader3@example.net', code: 550, reply: '550 5.1.1 User unknown' }] });
    const failedEvents: string[] = [];
    const failedTo: Record<string, readonly string[]> = {};
    mailer.on('failed', (e) => failedEvents.push(e.messageId!) && (failedTo[e.messageId!] = e.recipients));
    const report = await mailer.sendBatch(subscribers(8), {
      build: (s, i) => {
        if (i === 5) throw new Error('template exploded');
        if (i === 6) return { ...build(s), to: ['reader6.too@example.net', 'not-an-address'] };
        if (i === 7) return { ...build(s), provider: 'nope' };
        return build(s);
      },
    });
    expect(report).toMatchObject({ total: 8, sent: 4, failed: 4, skipped: 0 });
    expect(failedEvents.sort()).toEqual(['#5', 'reader3@example.net', 'reader6@example.net', 'reader7@example.net']);
    const byId = Object.fromEntries(report.failures.map((f) => [f.id, f]));
    expect(byId['reader3@example.net']).toMatchObject({ decision: 'permanent', responseCode: 550 });
    expect(byId['#5']!.message).toContain('build failed: template exploded');
    expect(byId['reader6@example.net']!.message).toContain('malformed recipient address');
    expect(byId['reader7@example.net']!.message).toContain('unknown provider "nope"');
    // Whom each failure did not reach: the well-formed recipients a refused message named too.
    expect(byId['reader3@example.net']!.to).toEqual(['reader3@example.net']);
    expect(byId['reader7@example.net']!.to).toEqual(['reader7@example.net']);
    expect(byId['reader6@example.net']!.to).toEqual(['reader6.too@example.net']);
    expect(byId['#5']!.to).toEqual([]);
    expect(failedTo).toEqual(Object.fromEntries(report.failures.map((f) => [f.id, f.to])));
    expect(srv.counts().unique).toBe(4);
  });

  it("names a refused message's own provider in its failed event (the first provider when it named none)", async () => {
    const srv = await startThrottlingSmtpServer();
    cleanup.push(() => srv.close());
    const mailer = createMailer({ providers: { first: { transport: srv.transportOptions() }, second: { transport: srv.transportOptions() } } });
    cleanup.push(() => mailer.close());
    const failed: Array<[string | undefined, string, string]> = [];
    mailer.on('failed', (e) => void failed.push([e.messageId, e.provider, e.lane]));
    const report = await mailer.sendBatch(subscribers(3), {
      build: (s, i) => {
        if (i === 0) return { ...build(s), provider: 'second', to: 'not an address' };
        if (i === 1) throw new Error('no row');
        return build(s);
      },
      route: () => {
        throw new Error('no such region');
      },
    });
    expect(report).toMatchObject({ total: 3, sent: 0, failed: 3 });
    expect(failed.sort()).toEqual([
      ['#1', 'first', 'first'],
      ['reader0@example.net', 'second', 'second'],
      ['reader2@example.net', 'first', 'first'],
    ]);
  });

  it('builds with an async build as with a sync one, and fails one that rejects alone', async () => {
    const { srv, mailer } = await setup();
    const report = await mailer.sendBatch(subscribers(6), {
      build: async (s, i) => {
        await new Promise((r) => setTimeout(r, i));
        if (i === 2) throw new Error('row vanished');
        return build(s);
      },
    });
    expect(report).toMatchObject({ total: 6, sent: 5, failed: 1 });
    expect(report.failures[0]).toMatchObject({ id: '#2', decision: 'permanent' });
    expect(report.failures[0]!.message).toContain('build failed: row vanished');
    expect(srv.counts()).toMatchObject({ unique: 5, duplicates: 0 });
  });

  it('fails a message whose route throws alone, as a message that cannot be built', async () => {
    const { srv, mailer } = await setup();
    const failedEvents: string[] = [];
    mailer.on('failed', (e) => failedEvents.push(e.messageId!));
    const report = await mailer.sendBatch(subscribers(5), {
      build,
      route: (message) => {
        if (message.id === 'reader1@example.net') throw new Error('no such region');
        return undefined;
      },
    });
    expect(report).toMatchObject({ total: 5, sent: 4, failed: 1 });
    expect(report.failures[0]).toMatchObject({ id: 'reader1@example.net', decision: 'permanent' });
    expect(report.failures[0]!.message).toContain('route failed: no such region');
    expect(report.failures[0]!.to).toEqual(['reader1@example.net']);
    expect(failedEvents).toEqual(['reader1@example.net']);
    expect(srv.counts()).toMatchObject({ unique: 4, duplicates: 0 });
  });

  it('goes through a long run of messages that settle as they start (refused, duplicate ids) without deepening the stack', async () => {
    const { srv, mailer } = await setup();
    // Each of these settles without waiting for anything: a message starting the next one as it
    // settles would nest a call per message, and 100,000 of them would overflow the stack.
    function* source() {
      for (let i = 0; i < 100_000; i++) yield i % 2 === 0 ? { id: `bad-${i}`, from: 'news@example.org', to: 'not-an-address', text: 'x' } : { id: 'same', from: 'news@example.org', to: 'reader@example.net', text: 'x' };
    }
    const report = await mailer.sendBatch(source(), { concurrency: 50 });
    expect(report).toMatchObject({ total: 100_000, sent: 1, failed: 50_000, skipped: 49_999, pending: 0 });
    expect(srv.counts()).toMatchObject({ unique: 1, duplicates: 0 });
  });

  it('sends two items that build the same id once', async () => {
    const { srv, mailer } = await setup();
    const list = [...subscribers(5), ...subscribers(3)];
    const withId = await mailer.sendBatch(list, { build, id: 'dupes' });
    expect(withId).toMatchObject({ total: 8, sent: 5, skipped: 3 });
    const withoutId = await mailer.sendBatch(list, { build });
    expect(withoutId).toMatchObject({ total: 8, sent: 5, skipped: 3 });
    expect(srv.counts()).toMatchObject({ unique: 10, duplicates: 0 });
  });

  it('stops on abort without losing anything, and a re-run sends exactly the rest', async () => {
    const { srv, mailer } = await setup({ rate: { max: 200, perMs: 1_000 } }, {});
    const list = subscribers(300);
    const controller = new AbortController();
    let sent = 0;
    const off = mailer.on('sent', () => {
      if (++sent === 100) controller.abort();
    });
    const first = await mailer.sendBatch(list, { build, id: 'resume-me', signal: controller.signal, concurrency: 20 });
    off();
    expect(first.aborted).toBe(true);
    expect(first.sent).toBeGreaterThanOrEqual(100);
    expect(first.sent).toBeLessThan(300);
    expect(first.sent + first.pending).toBe(first.total);
    expect(srv.counts()).toMatchObject({ unique: first.sent, duplicates: 0 });

    const second = await mailer.sendBatch(list, { build, id: 'resume-me' });
    expect(second).toMatchObject({ total: 300, skipped: first.sent, sent: 300 - first.sent, failed: 0, aborted: false });
    expect(srv.counts()).toMatchObject({ unique: 300, duplicates: 0 });
  });

  it('settles a message that failed after a part was accepted as done: its failure names the recipients not reached, and a re-run does not send it again', async () => {
    const srv = await startThrottlingSmtpServer({ script: [{ match: 'b@example.net', code: 550, reply: '550 5.1.1 User unknown' }] });
    cleanup.push(() => srv.close());
    const mailer = createMailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1, maxRecipientsPerMessage: 1 } } });
    cleanup.push(() => mailer.close());
    const message = { id: 'm1', messageId: '<m1@example.org>', from: 'news@example.org', to: ['a@example.net', 'b@example.net'], subject: 'Hi', text: 'Hello' };
    const first = await mailer.sendBatch([message], { id: 'partly' });
    expect(first).toMatchObject({ sent: 0, failed: 1, inDoubt: 0, pending: 0 });
    expect(first.failures[0]).toMatchObject({ id: 'm1', to: ['b@example.net'], responseCode: 550 });
    expect(first.failures[0]!.message).toContain('after 1 of 2 recipients accepted');
    const second = await mailer.sendBatch([message], { id: 'partly' });
    expect(second).toMatchObject({ total: 1, sent: 0, failed: 0, skipped: 1 });
    expect(srv.accepted.map((m) => m.to)).toEqual([['a@example.net']]);
  });

  it('counts an id repeated in a batch with an id as it does without one: failed once, then skipped', async () => {
    const { srv, mailer } = await setup({ script: [{ match: 'gone@example.net', code: 550, reply: '550 5.1.1 User unknown' }] });
    const source = ['gone@example.net', 'ok@example.net', 'gone@example.net'];
    const byEmail = (email: string) => ({ id: email, from: 'news@example.org', to: email, subject: 'Hi', text: 'Hello' });
    const without = await mailer.sendBatch(source, { build: byEmail, concurrency: 1 });
    const withId = await mailer.sendBatch(source, { id: 'repeats', build: byEmail, concurrency: 1 });
    for (const report of [without, withId]) expect(report).toMatchObject({ total: 3, sent: 1, failed: 1, skipped: 1 });
    expect(withId.failures.map((f) => f.id)).toEqual(['gone@example.net']);
    expect(srv.stats().rejected[550]).toBe(2); // once per batch, not once per repeat
  });

  it('stops on abort while an async source is still fetching its next item', async () => {
    const { srv, mailer } = await setup();
    const controller = new AbortController();
    let closed = false;
    async function* cursor() {
      try {
        yield* subscribers(3);
        await new Promise(() => {}); // a database that never answers again
      } finally {
        closed = true;
      }
    }
    let sent = 0;
    mailer.on('sent', () => ++sent === 3 && controller.abort());
    const report = await mailer.sendBatch(cursor(), { build, signal: controller.signal });
    expect(report).toMatchObject({ total: 3, sent: 3, aborted: true });
    expect(srv.counts()).toMatchObject({ unique: 3, duplicates: 0 });
    // Its return() waits behind the pending next() (async generators queue them): not awaited.
    expect(closed).toBe(false);
  });

  it("fails with a source's close error only once every message it started has settled", async () => {
    const { srv, mailer } = await setup({ latencyMs: 20 });
    const controller = new AbortController();
    function* cursor() {
      try {
        yield* subscribers(50);
      } finally {
        // eslint-disable-next-line no-unsafe-finally
        throw new Error('cursor close failed');
      }
    }
    mailer.on('sent', () => controller.abort());
    const error = await mailer.sendBatch(cursor(), { build, signal: controller.signal, concurrency: 10 }).catch((e: unknown) => e);
    expect(isBatchSourceError(error)).toBe(true);
    expect((error as Error).message).toMatch(/^sendBatch: the source's return\(\) threw after every message had settled \(\d+ sent, 0 failed\): cursor close failed$/);
    expect((error as Error).cause).toMatchObject({ message: 'cursor close failed' });
    const [lane] = await mailer.stats();
    expect(lane).toMatchObject({ queued: 0, inFlight: 0 });
    expect(srv.counts().unique).toBe(lane!.sent);
    // The report counts every message it started: sent, or given back when the signal came.
    const report = (error as { report: BatchReport }).report;
    expect(report.sent).toBe(lane!.sent);
    expect(report).toMatchObject({ total: 10, aborted: true });
    expect(report.sent + report.pending).toBe(10);
  });

  it('refuses bad batch options and a source that is not iterable before anything starts', async () => {
    const { srv, mailer } = await setup();
    await expect(mailer.sendBatch(subscribers(3), { build, concurrency: 0 })).rejects.toThrow('sendBatch options.concurrency: expected a whole number of 1 or more, got 0');
    await expect(mailer.sendBatch(subscribers(3), { build, waveSize: 2.5 })).rejects.toThrow('sendBatch options.waveSize: expected a whole number of 1 or more, got 2.5');
    // Each of these ran the batch before: a build or route that is not a function failed every
    // item one by one, a signal that is not an AbortSignal threw a TypeError, a typo was ignored.
    const bad: Array<[unknown, string]> = [
      [{ build: 'render' }, 'sendBatch options.build: expected a function, got "render"'],
      [{ build, route: 5 }, 'sendBatch options.route: expected a function, got 5'],
      [{ build, id: 123 }, 'sendBatch options.id: expected a non-empty string, got 123'],
      [{ build, id: '' }, 'sendBatch options.id: expected a non-empty string, got ""'],
      [{ build, signal: { aborted: false } }, 'sendBatch options.signal: expected an AbortSignal, got an object (Object)'],
      [{ build, total: -1 }, 'sendBatch options.total: expected a whole number of 0 or more, got -1'],
      [{ build, resendInDoubt: 'yes' }, 'sendBatch options.resendInDoubt: expected true or false, got "yes"'],
      [{ build, conurrency: 5 }, 'sendBatch options.conurrency: unknown option (known: id, build, route, concurrency,'],
      [null, 'sendBatch options: expected an object, got null'],
    ];
    for (const [options, message] of bad) await expect(mailer.sendBatch(subscribers(3), options as never)).rejects.toThrow(message);
    // Every bad option at once, in one error.
    const all = await mailer.sendBatch(subscribers(3), { build: 1, waveInterval: 'soon', total: 1.5 } as never).catch((e: unknown) => e);
    expect(isConfigError(all) && all.issues.map((i) => i.path)).toEqual(['sendBatch options.build', 'sendBatch options.total', 'sendBatch options.waveInterval']);
    // send() checks its signal the same way (it rejected with a TypeError).
    await expect(mailer.send(build(subscribers(1)[0]!), { signal: {} as AbortSignal })).rejects.toThrow('send options.signal: expected an AbortSignal, got an object (Object)');
    let progress = 0;
    mailer.on('progress', () => progress++);
    await expect(mailer.sendBatch(42 as unknown as ReturnType<typeof subscribers>, { build, progressInterval: '10ms' })).rejects.toThrow('expected an array, an iterable or an async iterable');
    // No progress timer left running for the batch that never started.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(progress).toBe(0);
    expect(srv.counts().unique).toBe(0);
  });

  it('reports progress at a steady cadence with counts, rate and time left', async () => {
    const { mailer } = await setup({ latencyMs: 2 });
    const events: ProgressEvent[] = [];
    mailer.on('progress', (e) => events.push(e));
    const report = await mailer.sendBatch(subscribers(400), { build, id: 'progress', progressInterval: '100ms', concurrency: 8 });
    expect(report.sent).toBe(400);
    expect(events.length).toBeGreaterThanOrEqual(2);
    const last = events.at(-1)!;
    expect(last).toMatchObject({ batchId: 'progress', total: 400, sent: 400, inFlight: 0, etaMs: 0 });
    const middle = events.find((e) => e.sent > 0 && e.sent < 400);
    if (middle) {
      expect(middle.ratePerSecond).toBeGreaterThan(0);
      expect(middle.etaMs).toBeGreaterThan(0);
    }
    for (let i = 1; i < events.length; i++) expect(events[i]!.sent).toBeGreaterThanOrEqual(events[i - 1]!.sent);
  });

  it('routes with options.route, and message.provider wins', async () => {
    const a = await startThrottlingSmtpServer();
    const b = await startThrottlingSmtpServer();
    cleanup.push(() => a.close(), () => b.close());
    const mailer = createMailer({ providers: { a: { transport: a.transportOptions() }, b: { transport: b.transportOptions() } } });
    cleanup.push(() => mailer.close());
    const report = await mailer.sendBatch(subscribers(10), {
      build: (s, i) => ({ ...build(s), ...(i === 0 ? { provider: 'a' } : {}) }),
      route: () => 'b',
    });
    expect(report.sent).toBe(10);
    expect([a.counts().unique, b.counts().unique]).toEqual([1, 9]);
  });
});
