import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMailer, type Mailer, type MailerEvents } from '../../src/index.js';
import { postfixAvailable, startPostfix, type PostfixLimits, type PostfixServer } from '../helpers/postfix.js';

// Against a real Postfix: its smtpd and anvil say "too many connections" and "too much mail" in
// their own words, at their own stages of the session. `.ci/run` installs Postfix and sets
// MAILPACER_TEST_POSTFIX=required, so that there these tests fail rather than skip without it.
const required = process.env.MAILPACER_TEST_POSTFIX === 'required';
const available = postfixAvailable();

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

async function postfix(limits: PostfixLimits): Promise<PostfixServer> {
  const server = await startPostfix(limits);
  cleanup.push(() => server.stop());
  return server;
}

function mailer(server: PostfixServer, provider: { maxConnections: number; rate?: { max: number; per: string } }): Mailer {
  const m = createMailer({ providers: { postfix: { transport: { host: server.host, port: server.port }, ...provider } }, retry: { minDelay: '100ms', maxDelay: '2s' } });
  cleanup.push(() => m.close());
  return m;
}

function record(m: Mailer) {
  const events = { retry: [] as MailerEvents['retry'][], throttle: [] as MailerEvents['throttle'][], failed: [] as MailerEvents['failed'][] };
  m.on('retry', (e) => events.retry.push(e));
  m.on('throttle', (e) => events.throttle.push(e));
  m.on('failed', (e) => events.failed.push(e));
  return events;
}

const newsletter = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, from: 'news@example.org', to: `reader${i}@example.net`, subject: `Issue ${i}`, text: 'Hello', messageId: `<${tag}-${i}@mailpacer.test>` }));

describe.skipIf(!available && !required)('against a real Postfix', () => {
  beforeAll(() => {
    if (!available) throw new Error('MAILPACER_TEST_POSTFIX=required, but Postfix cannot be started here: install it (apt-get install -y postfix) and run as root');
  });

  it("delivers every message once under Postfix's anvil limits, reading its 421 and 450 as connection and rate limits", async () => {
    // smtpd allows 2 connections at once and 40 messages per 4 s from one client; the mailer is
    // told 6 connections and 100/s, both too many.
    const server = await postfix({ connections: 2, messagesPerUnit: 40, unitSeconds: 4 });
    const m = mailer(server, { maxConnections: 6, rate: { max: 100, per: '1s' } });
    const events = record(m);
    const messages = newsletter(120, 'anvil');

    const report = await m.sendBatch(messages);

    expect(report).toMatchObject({ total: 120, sent: 120, failed: 0, inDoubt: 0 });
    const delivered = await server.waitForDelivered(120);
    expect(delivered.size).toBe(120);
    expect([...delivered.entries()].filter(([, times]) => times !== 1)).toEqual([]);
    expect([...delivered.keys()].sort()).toEqual(messages.map((msg) => msg.messageId.slice(1, -1)).sort());
    // Postfix's own words, classified: "421 4.7.0 mx.mailpacer.test Error: too many connections
    // from 127.0.0.1" and "450 4.7.1 Error: too much mail from 127.0.0.1".
    const connectionLimited = events.retry.filter((e) => e.decision === 'connection-limited');
    const rateLimited = events.retry.filter((e) => e.decision === 'rate-limited');
    expect(connectionLimited.length).toBeGreaterThan(0);
    expect(connectionLimited.every((e) => e.responseCode === 421 && /too many connections from 127\.0\.0\.1/.test(e.response ?? ''))).toBe(true);
    expect(rateLimited.length).toBeGreaterThan(0);
    expect(rateLimited.every((e) => e.responseCode === 450 && /too much mail from 127\.0\.0\.1/.test(e.response ?? ''))).toBe(true);
    expect(events.retry.filter((e) => e.decision !== 'connection-limited' && e.decision !== 'rate-limited')).toEqual([]);
    // And acted on: fewer connections, a lower rate.
    expect(events.throttle.some((e) => e.action === 'fewer-connections')).toBe(true);
    expect(events.throttle.some((e) => e.decision === 'rate-limited' && e.rate < 100)).toBe(true);
    // Postfix's side of it: each refusal is a warning in its log, and the mailer heard every one.
    const refusals = (what: string) => server.log().split('\n').filter((line) => line.includes(`warning: ${what} limit exceeded: `) && line.includes(' from localhost[127.0.0.1] ')).length;
    const figures = { durationMs: report.durationMs, connectionRefusals: refusals('Connection concurrency'), rateRefusals: refusals('Message delivery request rate'), connectionLimited: connectionLimited.length, rateLimited: rateLimited.length, throttles: events.throttle.length };
    console.log(`against Postfix's anvil: ${JSON.stringify(figures)}`);
    expect(figures.connectionLimited).toBe(figures.connectionRefusals);
    expect(figures.rateLimited).toBe(figures.rateRefusals);
  }, 120_000);

  it('fails a recipient Postfix refuses for good alone, without a retry, and delivers the rest', async () => {
    const server = await postfix({ recipientReplies: { 'reader3@example.net': '550 5.1.1 <reader3@example.net>: Recipient address rejected: User unknown' } });
    const m = mailer(server, { maxConnections: 2 });
    const events = record(m);

    const report = await m.sendBatch(newsletter(10, 'unknown'));

    expect(report).toMatchObject({ total: 10, sent: 9, failed: 1 });
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]).toMatchObject({ id: 'unknown-3' });
    expect(events.failed).toHaveLength(1);
    expect(events.failed[0]!.error).toMatchObject({ decision: 'permanent', responseCode: 550, attempts: 1 });
    expect(events.failed[0]!.error.message).toMatch(/User unknown/);
    expect(events.retry).toEqual([]);
    const delivered = await server.waitForDelivered(9);
    expect([...delivered.keys()].sort()).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9].map((i) => `unknown-${i}@mailpacer.test`).sort());
    expect([...delivered.values()].every((times) => times === 1)).toBe(true);
  });
});
