import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { isAbortedError, isDeliveryError, type Mailer, type MailerEvents, type RateWindow } from '../src/index.js';
import type { ThrottlingSmtpServer } from '../src/testing/index.js';
import { uniquePrefix } from './helpers/redis-server.js';
import { useCleanup } from './helpers/setup.js';

const { server, mailer, plainServer } = useCleanup();

/** Records every event of a mailer. */
function record(m: Mailer) {
  const events: { [K in keyof MailerEvents]: MailerEvents[K][] } = { retry: [], throttle: [], sent: [], failed: [], progress: [], error: [] };
  for (const name of Object.keys(events) as Array<keyof MailerEvents>) m.on(name, (e) => (events[name] as unknown[]).push(e));
  return events;
}

const fast = { minDelay: '20ms', maxDelay: '500ms' } as const;
const message = (i: number) => ({ from: 'news@example.org', to: `user${i}@example.net`, subject: `Hello ${i}`, text: 'Hi' });

describe('createMailer().send against a throttling server', () => {
  it('delivers 200 concurrent sends exactly once when the server allows 2 connections and the provider asks for 6', async () => {
    const srv = await server({ maxConnections: 2 });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 6 } }, retry: fast });
    const events = record(m);

    const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => m.send(message(i))));

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(srv.counts()).toMatchObject({ unique: 200, duplicates: 0 });
    expect(srv.stats().maxConcurrentConnections).toBeLessThanOrEqual(2);
    // The refusals were read as connection limits: the lane opened fewer, and no retry was used up.
    expect(srv.stats().connectionsRefused).toBeGreaterThan(0);
    expect(events.throttle.some((e) => e.action === 'fewer-connections' && e.connections <= 2)).toBe(true);
    expect(events.retry.every((e) => e.decision === 'connection-limited' && e.retriesLeft === 8)).toBe(true);
    const [lane] = await m.stats();
    expect(lane).toMatchObject({ sent: 200, failed: 0, configuredConnections: 6 });
    // Down from 6; it probes back up as sends succeed (one more connection per 20 × cap successes).
    expect(lane!.effectiveConnections).toBeLessThan(6);
  });

  it('delivers everything under a hidden rate limit, and the 421s thin out once the lane has adapted', async () => {
    const srv = await server({ rate: { max: 20, perMs: 1_000 } });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), rate: { max: 40, per: '1s' }, maxConnections: 4 } }, retry: { minDelay: '200ms', maxDelay: '2s' } });
    const events = record(m);
    const started = Date.now();

    const results = await Promise.allSettled(Array.from({ length: 300 }, (_, i) => m.send(message(i))));

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(srv.counts()).toMatchObject({ unique: 300, duplicates: 0 });
    expect(events.throttle.some((e) => e.action === 'slow-down' && e.rate < 40)).toBe(true);
    // Twice the server's rate at first; once slowed down, a 421 now and then as the rate probes back up.
    const retryTimes = events.retry.map((e) => e.decision);
    expect(retryTimes.every((d) => d === 'rate-limited')).toBe(true);
    const elapsed = Date.now() - started;
    const late = events.retry.length === 0 ? 0 : (srv.stats().replies421 * 1_000) / elapsed;
    expect(srv.stats().replies421).toBeLessThan(300 * 0.25);
    expect(late).toBeLessThan(5); // fewer than 5 refusals a second on average over the run
  });

  it('delivers greylisted mail after the greylist delay, without slowing the lane', async () => {
    const srv = await server({ greylist: { delayMs: 300 } });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { ...fast, greylistDelay: '400ms' } });
    const events = record(m);

    const results = await Promise.all([0, 1, 2].map((i) => m.send(message(i))));

    expect(results.map((r) => r.attempts)).toEqual([2, 2, 2]);
    expect(srv.counts()).toMatchObject({ unique: 3, duplicates: 0 });
    expect(events.retry.map((e) => [e.decision, e.delayMs])).toEqual([
      ['greylisted', 400],
      ['greylisted', 400],
      ['greylisted', 400],
    ]);
    expect(events.throttle).toEqual([]);
  });

  it('delivers through greylisting whose reply does not say so, once the window has passed', async () => {
    // A plain 451 reads as transient: three quick retries would all fall inside a 1.2 s window.
    // The last retry waits until greylistDelay has passed since the first deferral.
    const srv = await server({ greylist: { delayMs: 1_200, reply: '451 4.7.1 Please try again later' } });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { retries: 3, minDelay: '10ms', maxDelay: '40ms', greylistDelay: '1300ms' } });
    const events = record(m);
    const started = Date.now();

    const info = await m.send(message(0));

    expect(info.attempts).toBe(4);
    expect(srv.counts()).toMatchObject({ unique: 1, duplicates: 0 });
    expect(srv.stats().greylisted).toBe(3);
    expect(events.retry.map((e) => e.decision)).toEqual(['transient', 'transient', 'transient']);
    expect(events.retry.slice(0, 2).every((e) => e.delayMs <= 40)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_300);
  });

  it('fails a 550 at once while the others still arrive', async () => {
    const srv = await server({ script: [{ match: 'user3@example.net', code: 550, reply: '550 5.1.1 <user3@example.net>: Recipient address rejected: User unknown' }] });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: fast });
    const events = record(m);

    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => m.send({ ...message(i), id: `m${i}` })));

    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [[i, r.reason]] : []));
    expect(failed).toHaveLength(1);
    const [index, error] = failed[0]!;
    expect(index).toBe(3);
    expect(isDeliveryError(error)).toBe(true);
    expect(error).toMatchObject({ decision: 'permanent', responseCode: 550, attempts: 1, provider: 'main', messageId: 'm3' });
    expect(srv.counts().unique).toBe(9);
    expect(events.retry).toEqual([]);
    expect(events.failed.map((e) => e.messageId)).toEqual(['m3']);
  });

  it('fails fast on bad credentials, stops the provider, and never leaks the password', async () => {
    const srv = await server({ auth: { user: 'app', pass: 'right-password' } });
    const password = 'wrong-Pa55word';
    const m = mailer({ providers: { main: { transport: { ...srv.transportOptions(), auth: { user: 'app', pass: password } }, maxConnections: 3 } }, retry: { ...fast, retries: 5 } });
    const events = record(m);
    const started = Date.now();

    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => m.send(message(i))));

    expect(Date.now() - started).toBeLessThan(10_000);
    expect(results.every((r) => r.status === 'rejected' && isDeliveryError(r.reason) && r.reason.decision === 'auth')).toBe(true);
    // No retry storm: a handful of AUTH attempts (the connections open at the time), not 30 × 6.
    expect(srv.stats().rejected[535] ?? 0).toBeLessThanOrEqual(3);
    expect(events.retry).toEqual([]);
    expect(events.throttle.some((e) => e.action === 'stop')).toBe(true);
    expect((await m.stats())[0]!.state).toBe('stopped');
    const everything = JSON.stringify({ events, errors: results.map((r) => (r.status === 'rejected' ? { message: (r.reason as Error).message, ...r.reason } : null)) });
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(Buffer.from(`\0app\0${password}`).toString('base64'));
  });

  it('retries transient failures until every message arrives', async () => {
    const srv = await server({ transientFailureRate: 0.2, seed: 7 });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 3 } }, retry: { ...fast, retries: 10 } });
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => m.send(message(i))));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(srv.counts()).toMatchObject({ unique: 100, duplicates: 0 });
    expect(srv.stats().rejected[451]).toBeGreaterThan(0);
  });

  it('does not resend a message lost after the whole body went out (in doubt), unless asked', async () => {
    const srv = await server({ dropAfterAcceptRate: 1 });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: fast });
    const error = await m.send({ ...message(1), id: 'doubtful' }).catch((e: unknown) => e);
    expect(isDeliveryError(error)).toBe(true);
    expect(error).toMatchObject({ inDoubt: true, attempts: 1, messageId: 'doubtful' });
    // The server did take it: resending would have delivered it twice.
    expect(srv.counts()).toMatchObject({ unique: 1, duplicates: 0 });
  });

  it('resends dropped connections with resendInDoubt, so that every message arrives', async () => {
    const srv = await server({ dropConnectionRate: 0.2, seed: 11 });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 3 } }, retry: { ...fast, retries: 10, resendInDoubt: true } });
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => m.send(message(i))));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(srv.counts()).toMatchObject({ unique: 50, duplicates: 0 });
    expect(srv.stats().dropped).toBeGreaterThan(0);
  });

  it('pauses the whole lane on a quota refusal and keeps its messages pending until the pause ends', async () => {
    const srv = await server({ script: [{ match: 'user0@example.net', code: 454, reply: '454 Throttling failure: Daily message quota exceeded, try again in 2 seconds', times: 1, at: 'data' }] });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1 } }, retry: { ...fast, retries: 0 } });
    const events = record(m);
    const first = m.send(message(0));
    await new Promise((r) => setTimeout(r, 300));
    // Sent while the lane is paused: it waits too, and nothing fails (retries: 0 is not used up).
    const others = Promise.all([1, 2, 3].map((i) => m.send(message(i))));
    const [lane] = await m.stats();
    expect(lane!.state).toBe('paused');
    expect(srv.counts().unique).toBe(0);
    const results = await Promise.all([first, others]);
    expect(results[0].attempts).toBe(2);
    expect(srv.counts()).toMatchObject({ unique: 4, duplicates: 0 });
    const pause = events.throttle.find((e) => e.action === 'pause')!;
    expect(pause.decision).toBe('quota-exceeded');
    // Every message went out after the pause the server asked for.
    expect(Math.min(...srv.accepted.map((a) => a.at))).toBeGreaterThanOrEqual(pause.pausedUntil - 50);
  });

  it('does not count a quota pause against maxRetryTime: messages outwait a pause longer than their retry time', async () => {
    const srv = await server({
      script: [
        { match: 'user0@example.net', code: 454, reply: '454 Throttling failure: Daily message quota exceeded, try again in 2 seconds', times: 1, at: 'data' },
        // After the pause, a transient failure: its retry is within the retry time only if the
        // pause it waited through moved the message's deadline.
        { match: 'user2@example.net', code: 451, reply: '451 4.3.0 Temporary failure', times: 1, at: 'data' },
      ],
    });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1 } }, retry: { ...fast, greylistDelay: '100ms', maxRetryTime: '500ms' } });
    const events = record(m);
    const first = m.send(message(0));
    await new Promise((r) => setTimeout(r, 300));
    // Queued in the paused lane for longer than their whole retry time (the sweep gives up
    // waiting jobs every 250 ms): they wait, and go once the pause ends.
    const others = Promise.all([1, 2, 3].map((i) => m.send(message(i))));
    const results = await Promise.all([first, others]);
    expect(results[0].attempts).toBe(2);
    expect(results[1].map((r) => r.attempts)).toEqual([1, 2, 1]);
    expect(srv.counts()).toMatchObject({ unique: 4, duplicates: 0 });
    expect(events.failed).toEqual([]);
    const pause = events.throttle.find((e) => e.action === 'pause')!;
    expect(Math.min(...srv.accepted.map((a) => a.at))).toBeGreaterThanOrEqual(pause.pausedUntil - 50);
  });

  it('still fails a message whose retry time runs out for any other reason than a quota', async () => {
    const srv = await server({ script: [{ match: 'user0@example.net', code: 451, reply: '451 4.3.0 Temporary failure, try again in 2 seconds', at: 'data' }] });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { ...fast, greylistDelay: '100ms', maxRetryTime: '500ms' } });
    const error = await m.send(message(0)).catch((e: unknown) => e);
    expect(isDeliveryError(error) && error.message).toMatch(/out of retry time/);
  });

  // Before, the lane paused for the delay as named: "in 3 days" (or words misread as a delay) held
  // the provider for 3 days, and every message sent meanwhile failed at its maxRetryTime unsent.
  it('pauses a lane for a rate limit at most maxRetryTime, however long the delay the reply names', async () => {
    const srv = await server({ script: [{ match: 'user0@example.net', code: 421, reply: '421 4.7.0 Rate limit exceeded, try again in 3 days', times: 1, at: 'data' }] });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1 } }, retry: { ...fast, maxRetryTime: '1500ms' } });
    const events = record(m);
    const sentAt = Date.now();
    // Its own retry would come after its retry time: it fails now.
    const error = await m.send(message(0)).catch((e: unknown) => e);
    expect(isDeliveryError(error) && error.message).toMatch(/out of retry time/);
    const pause = events.throttle.find((e) => e.action === 'pause')!;
    expect(pause.decision).toBe('rate-limited');
    expect(pause.pausedUntil - sentAt).toBeLessThanOrEqual(1_500 + 1_000);
    // A message sent during the pause (its deadline half a second after the pause's end) waits it out and goes.
    await new Promise((r) => setTimeout(r, 500));
    const result = await m.send(message(1), { signal: AbortSignal.timeout(10_000) });
    expect(result.attempts).toBe(1);
    expect(srv.counts()).toMatchObject({ unique: 1, duplicates: 0 });
    expect(srv.accepted[0]!.at).toBeGreaterThanOrEqual(pause.pausedUntil - 50);
  });

  // Before, a quota refusal's named delay was taken as stated: "in 30 days" (or words misread as a
  // delay) held the provider, and every message of it, for 30 days.
  it('pauses for a quota at most a day, or the longest configured window, however long the delay the reply names', async () => {
    const refusal = '454 Throttling failure: Daily message quota exceeded, try again in 30 days';
    const pausedFor = async (rate: RateWindow[]) => {
      const srv = await server({ script: [{ match: 'user0@example.net', code: 454, reply: refusal, times: 1, at: 'data' }] });
      const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1, rate } }, retry: fast });
      const events = record(m);
      const sentAt = Date.now();
      const waiting = m.send(message(0)).catch((e: unknown) => e);
      await vi.waitFor(() => expect(events.throttle.map((e) => e.action)).toContain('pause'), { timeout: 5_000, interval: 20 });
      const pause = events.throttle.find((e) => e.action === 'pause')!;
      expect(pause.decision).toBe('quota-exceeded');
      const [lane] = await m.stats();
      expect(lane!.state).toBe('paused');
      await m.close();
      // The message waited in the paused lane (nothing failed it) until close() ended the wait.
      const ended = await waiting;
      expect(isAbortedError(ended) && ended.code).toBe('ERR_MAILPACER_CLOSED');
      expect(srv.counts().unique).toBe(0);
      return pause.pausedUntil - sentAt;
    };
    const day = 86_400_000;
    const underDay = await pausedFor([{ max: 100, per: '1s' }]);
    expect(underDay).toBeGreaterThan(day - 60_000);
    expect(underDay).toBeLessThanOrEqual(day + 5_000);
    // A provider with a monthly quota may be told to wait up to its window.
    const monthly = await pausedFor([{ max: 100, per: '1s' }, { max: 1_000_000, per: '30d' }]);
    expect(monthly).toBeGreaterThan(29.9 * day);
    expect(monthly).toBeLessThanOrEqual(30 * day + 5_000);
  });

  it('waits for a configured quota with no connection open, and without running down the retry time', { timeout: 120_000 }, async () => {
    // A quota window (longer than a minute) of 3: the fourth and fifth messages wait about a minute
    // for it, far longer than their retry time. With one connection, the wait is found on a
    // connection already open; with five, on new ones, in the middle of a transaction (a new
    // connection books its slot once the server has accepted DATA).
    const quotaWait = async (maxConnections: number) => {
      const srv = await server();
      const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections, rate: { max: 3, per: '61s' } } }, retry: { ...fast, greylistDelay: '100ms', maxRetryTime: '2s' } });
      const events = record(m);
      const sends = Promise.all([0, 1, 2, 3, 4].map((i) => m.send(message(i))));
      // The lane pauses for its quota: three sent, and no connection open on either side.
      await vi.waitFor(
        async () => {
          const [lane] = await m.stats();
          expect({ sent: srv.counts().unique, state: lane!.state, connections: lane!.connections, serverConnections: srv.stats().connections }).toEqual({ sent: 3, state: 'paused', connections: 0, serverConnections: 0 });
        },
        { timeout: 10_000, interval: 50 },
      );
      // Past the retry time: still nothing failed, the two wait in line.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(events.failed).toEqual([]);
      const [lane] = await m.stats();
      expect(lane).toMatchObject({ state: 'paused', connections: 0, queued: 2 });
      expect(lane!.pausedUntil).toBeGreaterThan(Date.now());
      const results = await sends;
      expect(results.map((r) => r.attempts)).toEqual([1, 1, 1, 1, 1]);
      expect(srv.counts()).toMatchObject({ unique: 5, duplicates: 0 });
      expect(srv.maxInAnyWindow(61_000)).toBeLessThanOrEqual(3);
      expect(srv.stats()).toMatchObject({ inDoubt: 0, connectionsRefused: 0 });
      expect(events.error).toEqual([]);
      return events.retry.length;
    };
    // Both at once: a minute each.
    const retries = await Promise.all([quotaWait(1), quotaWait(5)]);
    // Calling off a transaction to wait for the quota is not a failed attempt.
    expect(retries).toEqual([0, 0]);
  });

  it('paces by the short windows: a daily quota is a total, not a rate', async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), rate: [{ max: 20, per: '1s' }, { max: 100_000, per: '24h' }] } } });
    const [lane] = await m.stats();
    expect(lane).toMatchObject({ configuredRate: 20, effectiveRate: 20 });
  });

  it('sends again, after the delay, to the recipients a server refused for now while it took the others', async () => {
    const srv = await server({
      script: [
        { match: 'b@example.net', code: 450, reply: '450 4.2.0 <b@example.net>: Recipient address rejected: Greylisted', times: 1 },
        { match: 'c@example.net', code: 550, reply: '550 5.1.1 <c@example.net>: Recipient address rejected: User unknown' },
      ],
    });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { ...fast, greylistDelay: '200ms' } });
    const events = record(m);
    const info = await m.send({ ...message(0), to: ['a@example.net', 'b@example.net', 'c@example.net'] });
    expect([...(info.accepted as string[])].sort()).toEqual(['a@example.net', 'b@example.net']);
    expect(info.rejected).toEqual(['c@example.net']);
    expect(info.attempts).toBe(2);
    // Two transactions of the one message: every recipient reached once.
    expect(srv.accepted.map((a) => a.to)).toEqual([['a@example.net'], ['b@example.net']]);
    expect(new Set(srv.accepted.map((a) => a.messageId)).size).toBe(1);
    expect(srv.accepted[1]!.at - srv.accepted[0]!.at).toBeGreaterThanOrEqual(190);
    expect(events.retry).toMatchObject([{ decision: 'greylisted', delayMs: 200, recipients: ['b@example.net'] }]);
    expect(events.sent).toMatchObject([{ rejected: ['c@example.net'], attempts: 2 }]);
  });

  it('does not send again to recipients refused for now when that would be past the message\'s maxRetryTime', async () => {
    const srv = await server({ script: [{ match: 'b@example.net', code: 450, reply: '450 4.2.0 <b@example.net>: Recipient address rejected: Greylisted' }] });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { ...fast, greylistDelay: '1h', maxRetryTime: '1m' } });
    const events = record(m);
    const error = await m.send({ ...message(0), to: ['a@example.net', 'b@example.net'] }).catch((e: unknown) => e);
    expect(isDeliveryError(error) && error.message).toMatch(/450 4\.2\.0 .*Greylisted \(out of retry time\) \(after 1 of 2 recipients accepted\)/);
    expect(isDeliveryError(error) && error.decision).toBe('greylisted');
    expect(srv.accepted.map((a) => a.to)).toEqual([['a@example.net']]);
    // It fails at once: no retry was scheduled for b.
    expect(events.retry).toEqual([]);
  });

  it('fails a message whose recipient is refused for now until its retries run out, saying how many were reached', async () => {
    const srv = await server({ script: [{ match: 'b@example.net', code: 451, reply: '451 4.3.0 <b@example.net>: Temporary lookup failure' }] });
    // greylistDelay: the last retry after a plain 451 waits that long after the first (default 5 minutes).
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { ...fast, retries: 2, greylistDelay: '100ms' } });
    const error = await m.send({ ...message(0), to: ['a@example.net', 'b@example.net'] }).catch((e: unknown) => e);
    expect(isDeliveryError(error) && error.message).toMatch(/451 4\.3\.0 .*\(out of retries\) \(after 1 of 2 recipients accepted\)/);
    expect(isDeliveryError(error) && error.accepted).toEqual(['a@example.net']);
    expect(srv.accepted.map((a) => a.to)).toEqual([['a@example.net']]);
  });

  it('fails a message without recipients or with a malformed address alone', async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } } });
    const events = record(m);
    const results = await Promise.allSettled([
      m.send({ from: 'a@example.org', subject: 'none', text: 'x' }),
      m.send({ from: 'a@example.org', to: 'not an address', text: 'x' }),
      m.send({ ...message(1), provider: 'nope' }),
      m.send(message(2)),
      m.send({ ...message(3), provider: 5 as unknown as string }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled', 'rejected']);
    // The events name a provider as a string, whatever the message gave.
    expect(events.failed.map((e) => typeof e.provider)).toEqual(['string', 'string', 'string', 'string']);
    const reasons = results.slice(0, 3).map((r) => (r as PromiseRejectedResult).reason as Error & { decision: string });
    expect(reasons.map((r) => r.decision)).toEqual(['permanent', 'permanent', 'permanent']);
    expect(reasons[0]!.message).toContain('no recipients');
    expect(reasons[1]!.message).toContain('malformed recipient address "not an address"');
    expect(reasons[2]!.message).toContain('unknown provider "nope"');
    expect(srv.counts().unique).toBe(1);
  });

  it('sends a message as it was when send() was called, though the caller changes the object while it waits', async () => {
    // One connection: 49 of the 50 sends wait in the lane while the loop reuses the same object,
    // as nodemailer's sendMail copies its options when it is called.
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1 } } });
    const reused: { from: string; to: string; subject: string; text: string } = { ...message(0) };
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 50; i++) {
      reused.to = `user${i}@example.net`;
      reused.subject = `Hello ${i}`;
      sends.push(m.send(reused));
    }
    reused.to = 'nobody@example.net';
    await Promise.all(sends);
    expect(srv.accepted.map((a) => a.to.join(',')).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `user${i}@example.net`).sort());
    expect(reused).not.toHaveProperty('messageId'); // the Message-ID mailpacer adds goes on its copy
  });

  it('fails a message whose stream attachment its first attempt read once a retry finds it read, not after every retry', async () => {
    const srv = await server({ greylist: { delayMs: 50 } });
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, retry: { ...fast, greylistDelay: '100ms' } });
    const attachments = [{ filename: 'a.txt', content: Readable.from(['x'.repeat(20_000)]) }];
    const error = await m.send({ ...message(1), attachments }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'DeliveryError', decision: 'permanent', attempts: 2 });
    expect((error as Error).message).toContain('Content stream was already read');
    // The same message with a Buffer goes at its second attempt.
    const sent = await m.send({ ...message(2), attachments: [{ filename: 'a.txt', content: Buffer.from('x'.repeat(20_000)) }] });
    expect(sent.attempts).toBe(2);
  });

  it('resolves with nodemailer info plus attempts and provider, keeping one Message-ID across retries', async () => {
    const srv = await server({ script: [{ match: 'user1@example.net', code: 451, reply: '451 4.3.0 Temporary failure', times: 2, at: 'data' }] });
    const m = mailer({ providers: { primary: { transport: srv.transportOptions() } }, retry: fast });
    const info = await m.send({ ...message(1), id: 'welcome-1' });
    expect(info).toMatchObject({ attempts: 3, provider: 'primary', id: 'welcome-1', accepted: ['user1@example.net'] });
    expect(srv.accepted.map((a) => a.messageId)).toEqual([info.messageId]);
  });
});

describe('createMailer().send against a plain smtp-server', () => {
  it('sends through any SMTP server with nodemailer options passed through', async () => {
    const { port, transactions } = await plainServer();

    const m = mailer({ providers: { local: { transport: { host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.example.org' }, rate: { max: 100, per: '1s' } } } });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => m.send(message(i))));
    expect(results.every((r) => r.attempts === 1)).toBe(true);
    expect(transactions.map((to) => to.join(',')).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `user${i}@example.net`).sort());
  });
});

describe('a custom transport that answers synchronously', () => {
  it('still lets the event loop turn: timers and I/O run during the batch', async () => {
    const transport = {
      name: 'sync',
      version: '1',
      send(mail: { message: { getEnvelope(): unknown } }, callback: (error: Error | null, info: unknown) => void) {
        callback(null, { messageId: '<x@example.org>', envelope: mail.message.getEnvelope(), accepted: [], rejected: [], response: '250 ok' });
      },
    };
    const m = mailer({ providers: { custom: { transport } } });
    // Counts the turns of the event loop while the batch runs.
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const report = await m.sendBatch(Array.from({ length: 5_000 }, (_, i) => message(i)), { concurrency: 64 });
    running = false;
    expect(report.sent).toBe(5_000);
    // A turn at least every 256 sends (without it: none until the batch ends).
    expect(turns).toBeGreaterThanOrEqual(5_000 / 256 - 1);
  });
});

describe('close()', () => {
  const { server, mailer } = useCleanup();

  it('fails the messages still waiting with ERR_MAILPACER_CLOSED, and does not wait for their turn', async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), rate: { max: 1, per: '1s' }, maxConnections: 1 } } });
    const sends = Array.from({ length: 5 }, (_, i) => m.send(message(i)).then(() => 'sent', (e: { code?: string; name?: string }) => `${e.name} ${e.code}`));
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await m.close();
    expect(Date.now() - started).toBeLessThan(1_500);
    const outcomes = await Promise.all(sends);
    expect(outcomes[0]).toBe('sent');
    expect(outcomes.slice(1)).toEqual(Array(4).fill('AbortedError ERR_MAILPACER_CLOSED'));
    expect(srv.counts().unique).toBe(1);
    await expect(m.send(message(9))).rejects.toMatchObject({ code: 'ERR_MAILPACER_CLOSED' });
    // Closed comes first: a bad message is not checked (nor reported as failed) once the mailer is closed.
    await expect(m.send({ from: 'a@example.org', text: 'no recipients' })).rejects.toMatchObject({ code: 'ERR_MAILPACER_CLOSED' });
  });
});

describe('an abort or close() while a message is on the wire, or partly sent', () => {
  const { server, mailer, plainServer } = useCleanup();

  /** A server that holds its reply to each message until `release` is called with the answer; `arrived` resolves once `n` bodies are in. */
  async function holdingServer(n: number) {
    let answer!: (value: 'accept' | 'drop' | { responseCode: number; message: string }) => void;
    const released = new Promise<'accept' | 'drop' | { responseCode: number; message: string }>((resolve) => (answer = resolve));
    let arrived!: () => void;
    const inFull = new Promise<void>((resolve) => (arrived = resolve));
    const { port, transactions } = await plainServer({}, (to) => {
      if (transactions.length === n) arrived();
      return released;
    });
    const transport = { host: '127.0.0.1', port, secure: false, ignoreTLS: true };
    return { transport, transactions, inFull, release: answer };
  }

  it.each([
    // Not "aborted": the server may have taken it, and an aborted send may be sent again.
    ['the connection is cut after the body went out: in doubt', 'drop', { name: 'DeliveryError', inDoubt: true, messageId: 'm1' }, ['m1']],
    ['the server refuses it: the failure it is', { responseCode: 550, message: '5.7.1 Message rejected as spam' }, { name: 'DeliveryError', decision: 'permanent', responseCode: 550 }, ['m1']],
    // Deferred: not taken, so it may go again.
    ['the server defers it: aborted', { responseCode: 451, message: '4.3.0 Try again later' }, { name: 'AbortedError' }, []],
  ] as const)('reports a send aborted while it was on the wire by its outcome: %s', async (_, answer, outcome, failed) => {
    const { transport, inFull, release } = await holdingServer(1);
    const m = mailer({ providers: { main: { transport } }, retry: fast });
    const events = record(m);
    const controller = new AbortController();
    const sent = m.send({ ...message(1), id: 'm1' }, { signal: controller.signal }).catch((e: unknown) => e);
    await inFull;
    controller.abort();
    release(answer);
    expect(await sent).toMatchObject(outcome);
    expect(events.failed.map((e) => e.messageId)).toEqual(failed);
  });

  it('ends the wait of a send whose connection holds it for its rate slot when its signal aborts, and sends nothing', async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1, rate: { max: 1, per: '1m' } } }, retry: fast });
    await m.send(message(0));
    const controller = new AbortController();
    const waiting = m.send(message(1), { signal: controller.signal }).catch((e: unknown) => e);
    // Taken by the open connection, which waits for the next slot (a minute on).
    await vi.waitFor(async () => expect(await m.stats()).toMatchObject([{ queued: 0, inFlight: 1 }]), { timeout: 10_000, interval: 20 });
    controller.abort();
    expect(await waiting).toMatchObject({ name: 'AbortedError' });
    expect(srv.accepted).toHaveLength(1);
  });

  it('reports a message sent in parts and aborted after a part went in doubt, so that no re-run sends that part twice', async () => {
    const srv = await server();
    // One recipient per transaction, one transaction a minute: the second part waits for its slot.
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxRecipientsPerMessage: 1, rate: { max: 1, per: '1m' } } }, retry: fast });
    const events = record(m);
    const controller = new AbortController();
    const sent = m.send({ ...message(1), to: ['a@example.net', 'b@example.net'], id: 'two-parts' }, { signal: controller.signal }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(srv.accepted).toHaveLength(1), { timeout: 10_000, interval: 20 });
    controller.abort();
    const error = await sent;
    expect(error).toMatchObject({ name: 'DeliveryError', inDoubt: true, messageId: 'two-parts', accepted: ['a@example.net'] });
    expect((error as Error).message).toBe('Delivery of two-parts stopped: send aborted after 1 of 2 recipients accepted (in doubt: not resent)');
    expect(events.failed.map((e) => e.error.inDoubt)).toEqual([true]);
  });

  const emails = ['a', 'b', 'c', 'd'].map((name) => `${name}@example.net`);
  const build = (to: string) => ({ id: to, from: 'news@example.org', to, subject: 'November', text: 'Hi' });

  it('counts the messages of a batch aborted while they were on the wire in doubt, and its re-run sends none again', async () => {
    const { transport, transactions, inFull, release } = await holdingServer(4);
    const m = mailer({ providers: { main: { transport, maxConnections: 4 } }, retry: fast });
    const controller = new AbortController();
    const running = m.sendBatch(emails, { id: 'wire', build, signal: controller.signal });
    await inFull;
    controller.abort();
    release('drop');
    expect(await running).toMatchObject({ sent: 0, inDoubt: 4, pending: 0 });
    expect(await m.sendBatch(emails, { id: 'wire', build })).toMatchObject({ sent: 0, inDoubt: 4 });
    expect(transactions).toHaveLength(4);
  });

  it('counts them in doubt when the mailer closes, and a new mailer on the same Redis sends none again', async () => {
    const { transport, transactions, inFull, release } = await holdingServer(4);
    const options = { redis: 'redis://127.0.0.1:6379', keyPrefix: uniquePrefix(), providers: { main: { transport, maxConnections: 4 } }, retry: fast };
    const first = mailer(options);
    const running = first.sendBatch(emails, { id: 'wire', build });
    await inFull;
    const closing = first.close();
    release('drop');
    const [report] = await Promise.all([running, closing]);
    expect(report).toMatchObject({ sent: 0, inDoubt: 4, pending: 0 });
    expect(await mailer(options).sendBatch(emails, { id: 'wire', build })).toMatchObject({ sent: 0, inDoubt: 4 });
    expect(transactions).toHaveLength(4);
  });
});

describe('replies nodemailer loses', () => {
  const { server, mailer } = useCleanup();

  it('reads a 421 at RCPT on a reused connection as the rate limit it is, not a dropped connection', async () => {
    const srv = await server({ script: [{ match: 'user1@example.net', code: 421, reply: '421 4.7.0 Try again later, closing connection. (RCPT) - gsmtp', times: 1 }] });
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), maxConnections: 1, rate: { max: 50, per: '1s' } } }, retry: fast });
    const decisions: string[] = [];
    m.on('retry', (e) => decisions.push(`${e.decision} ${e.responseCode}`));
    await m.send(message(0)); // opens the connection that the next message reuses
    await m.send(message(1));
    expect(decisions).toEqual(['rate-limited 421']);
    expect(srv.counts()).toMatchObject({ unique: 2, duplicates: 0 });
  });

  it('reads it too when the transport has a logger of its own, and leaves that logger its lines', async () => {
    const srv = await server({ script: [{ match: 'user1@example.net', code: 421, reply: '421 4.7.0 Try again later, closing connection. (RCPT) - gsmtp', times: 1 }] });
    const lines: string[] = [];
    const log = (_entry: unknown, message: unknown) => void lines.push(String(message));
    const logger = { trace: log, debug: log, info: log, warn: log, error: log, fatal: log };
    const m = mailer({ providers: { main: { transport: { ...srv.transportOptions(), logger }, maxConnections: 1, rate: { max: 50, per: '1s' } } }, retry: fast });
    const decisions: string[] = [];
    m.on('retry', (e) => decisions.push(`${e.decision} ${e.responseCode}`));
    await m.send(message(0));
    await m.send(message(1));
    expect(decisions).toEqual(['rate-limited 421']);
    expect(lines).toContain('Creating transport: %s');
  });
});

describe('a pause shared through Redis', () => {
  const { server, mailer } = useCleanup();

  it('holds back another mailer on the same prefix, also on a lane without a rate window (which books nothing per send)', async () => {
    const srv = await server({ script: [{ match: 'user0@example.net', code: 421, reply: '421 4.7.0 Rate limit exceeded, slow down', times: 1 }] });
    const keyPrefix = uniquePrefix();
    const options = { redis: 'redis://127.0.0.1:6379', keyPrefix, providers: { main: { transport: srv.transportOptions(), maxConnections: 1 } }, retry: fast, adaptive: { cooldown: '2s' } };
    const a = mailer(options);
    const b = mailer(options);
    await b.send(message(9)); // b has read the lane's state: not paused
    const paused = new Promise<number>((resolve) => a.on('throttle', (e) => e.action === 'pause' && resolve(e.pausedUntil)));
    const first = a.send(message(0)).catch((e: unknown) => e); // 421: no window to slow down, so the lane pauses for the cooldown
    const pausedUntil = await paused;
    // A lane without a rate window re-reads the shared state at most every 100 ms: b's view is older than that now.
    await new Promise((resolve) => setTimeout(resolve, 150));
    await b.send(message(1));
    await first;
    const arrived = (to: string) => srv.accepted.find((m) => m.to.includes(to))!.at;
    expect(arrived('user1@example.net')).toBeGreaterThanOrEqual(Math.floor(pausedUntil));
    expect(arrived('user0@example.net')).toBeGreaterThanOrEqual(Math.floor(pausedUntil));
  });
});
