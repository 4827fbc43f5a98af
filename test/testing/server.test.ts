import { createServer } from 'node:net';
import nodemailer, { type SendMailOptions, type Transporter } from 'nodemailer';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer, type ThrottlingSmtpServerOptions } from '../../src/testing/index.js';

const servers: ThrottlingSmtpServer[] = [];
const transports: Transporter[] = [];

afterEach(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options: ThrottlingSmtpServerOptions = {}): Promise<ThrottlingSmtpServer> {
  const server = await startThrottlingSmtpServer(options);
  servers.push(server);
  return server;
}

/** A real nodemailer transport pointed at the server, closed after the test. */
function connect(server: ThrottlingSmtpServer, extra: { pool?: boolean; auth?: { user: string; pass: string } } = {}): Transporter {
  const transport = extra.pool
    ? nodemailer.createTransport({ ...server.transportOptions(), ...extra, pool: true })
    : nodemailer.createTransport({ ...server.transportOptions(), ...extra, pool: false });
  transports.push(transport);
  return transport;
}

function mail(n: number, overrides: SendMailOptions = {}): SendMailOptions {
  return { from: 'sender@example.com', to: `rcpt${n}@example.org`, subject: `message ${n}`, text: 'Hello', messageId: `<m${n}@mailpacer.test>`, ...overrides };
}

/** The rejection reason of a send that must fail. */
async function failure(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  const error: unknown = await promise.then(
    () => {
      throw new Error('expected the send to fail');
    },
    (err: unknown) => err,
  );
  return error as Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('startThrottlingSmtpServer', () => {
  test('listens on a random loopback port and points nodemailer at it', async () => {
    const server = await start();
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`smtp://127.0.0.1:${server.port}`);
    expect(server.transportOptions()).toEqual({ host: '127.0.0.1', port: server.port, secure: false, ignoreTLS: true });
  });

  test('accepts a message and records it with its Message-ID', async () => {
    const server = await start();
    const info = await connect(server).sendMail(mail(1));

    expect(info.messageId).toBe('<m1@mailpacer.test>');
    expect(server.accepted).toHaveLength(1);
    const [record] = server.accepted;
    expect(record).toMatchObject({ messageId: '<m1@mailpacer.test>', from: 'sender@example.com', to: ['rcpt1@example.org'] });
    expect(record?.size).toBeGreaterThan(100);
    expect(record?.connectionId).toEqual(expect.any(String));
    expect(record?.at).toBeLessThanOrEqual(Date.now());
    expect(server.stats()).toMatchObject({ accepted: 1, rejected: {}, replies421: 0, dropped: 0 });
  });

  test('refuses connections beyond maxConnections with a 421 at the greeting', async () => {
    // The latency keeps the admitted sessions open while the others arrive.
    const server = await start({ maxConnections: 2, latencyMs: 300 });
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => connect(server).sendMail(mail(n))));

    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Record<string, unknown>] : []));
    expect(refused.length).toBeGreaterThan(0);
    for (const err of refused) {
      // nodemailer reports a non-220 greeting as a protocol error, not ECONNECTION.
      expect(err).toMatchObject({ code: 'EPROTOCOL', responseCode: 421, command: 'CONN', response: '421 4.7.0 Too many connections, try again later' });
    }
    const stats = server.stats();
    expect(stats.maxConcurrentConnections).toBeLessThanOrEqual(2);
    expect(stats.connectionsRefused).toBe(refused.length);
    expect(stats.replies421).toBe(refused.length);
    expect(server.accepted).toHaveLength(5 - refused.length);
  });

  test('counts open connections exactly, down to zero once clients leave', async () => {
    const server = await start({ maxConnections: 3 });
    const pooled = connect(server, { pool: true });
    await Promise.all([1, 2, 3].map((n) => pooled.sendMail(mail(n))));
    expect(server.stats().connections).toBeGreaterThan(0);

    pooled.close();
    await vi.waitFor(() => expect(server.stats().connections).toBe(0));
    await connect(server).sendMail(mail(4));
    expect(server.stats().connectionsRefused).toBe(0);
  });

  test('refuses messages beyond the rate with the configured code', async () => {
    const server = await start({ rate: { max: 3, perMs: 60_000, code: 450 } });
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => connect(server).sendMail(mail(n))));

    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Record<string, unknown>] : []));
    expect(refused).toHaveLength(2);
    for (const err of refused) {
      expect(err).toMatchObject({ code: 'EMESSAGE', command: 'DATA', responseCode: 450, response: '450 4.7.0 Rate limit exceeded, slow down' });
    }
    expect(server.accepted).toHaveLength(3);
    expect(server.stats().rejected).toEqual({ 450: 2 });
    expect(server.maxInAnyWindow(60_000)).toBe(3);
  });

  test('a rate 421 closes the connection, as RFC 5321 requires', async () => {
    const server = await start({ rate: { max: 1, perMs: 60_000 } });
    const pooled = connect(server, { pool: true });
    await pooled.sendMail(mail(1));

    const err = await failure(pooled.sendMail(mail(2)));
    expect(err).toMatchObject({ code: 'EMESSAGE', command: 'DATA', responseCode: 421, response: '421 4.7.0 Rate limit exceeded, slow down' });
    // The pool would keep an idle connection open; the server closed it.
    await vi.waitFor(() => expect(server.stats().connections).toBe(0));
    expect(server.stats().replies421).toBe(1);
  });

  test('the rate window slides: a refused sender is admitted once the window has passed', async () => {
    const server = await start({ rate: { max: 2, perMs: 300, code: 451 } });
    const transport = connect(server);
    await transport.sendMail(mail(1));
    await transport.sendMail(mail(2));
    expect(await failure(transport.sendMail(mail(3)))).toMatchObject({ responseCode: 451 });

    await sleep(400);
    await transport.sendMail(mail(4));
    expect(server.accepted.map((m) => m.messageId)).toEqual(['<m1@mailpacer.test>', '<m2@mailpacer.test>', '<m4@mailpacer.test>']);
  });

  test('greylisting defers a recipient at RCPT TO until the delay has passed', async () => {
    const server = await start({ greylist: { delayMs: 200 } });
    const transport = connect(server);

    const first = await failure(transport.sendMail(mail(1)));
    expect(first).toMatchObject({ code: 'EENVELOPE', command: 'RCPT TO', responseCode: 451, response: '451 4.7.1 Greylisted, please try again later' });
    expect(server.accepted).toHaveLength(0);

    await sleep(300);
    await transport.sendMail(mail(1));
    expect(server.accepted).toHaveLength(1);
    expect(server.stats()).toMatchObject({ greylisted: 1, rejected: { 451: 1 } });
  });

  test('greylistRecipients limits greylisting to the recipients it selects', async () => {
    const server = await start({ greylist: { delayMs: 60_000 }, greylistRecipients: (address) => address.endsWith('@grey.example') });
    const transport = connect(server);
    await transport.sendMail(mail(1));
    const err = await failure(transport.sendMail(mail(2, { to: 'someone@grey.example' })));
    expect(err).toMatchObject({ responseCode: 451 });
    expect(server.accepted).toHaveLength(1);
  });

  test('a scripted 550 refuses one recipient and the message goes to the others', async () => {
    const server = await start({ script: [{ match: 'bad@example.org', code: 550, reply: '550 5.1.1 User unknown' }] });
    const info = await connect(server).sendMail(mail(1, { to: ['good@example.org', 'BAD@example.org'] }));

    expect(info.rejected).toEqual(['BAD@example.org']);
    expect(server.accepted[0]?.to).toEqual(['good@example.org']);
    expect(server.stats().rejected).toEqual({ 550: 1 });
    const alone = await failure(connect(server).sendMail(mail(2, { to: 'bad@example.org' })));
    expect(alone).toMatchObject({ code: 'EENVELOPE', command: 'RCPT TO', responseCode: 550, response: '550 5.1.1 User unknown' });
  });

  test('a scripted rule fires `times` times, and `at: data` answers at the end of DATA', async () => {
    const server = await start({
      script: [{ match: /@busy\.example$/, code: 452, reply: '4.2.2 Mailbox full', times: 1, at: 'data' }],
    });
    const transport = connect(server);
    const err = await failure(transport.sendMail(mail(1, { to: 'a@busy.example' })));
    expect(err).toMatchObject({ code: 'EMESSAGE', command: 'DATA', responseCode: 452, response: '452 4.2.2 Mailbox full' });
    await transport.sendMail(mail(1, { to: 'a@busy.example' }));
    expect(server.accepted).toHaveLength(1);
  });

  test('with auth set, wrong credentials get 535 and the right ones are accepted', async () => {
    const server = await start({ auth: { user: 'user', pass: 'secret' } });
    expect(server.transportOptions().auth).toEqual({ user: 'user', pass: 'secret' });

    const err = await failure(connect(server, { auth: { user: 'user', pass: 'wrong' } }).sendMail(mail(1)));
    expect(err).toMatchObject({ code: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN', response: '535 5.7.8 Authentication credentials invalid' });
    await connect(server).sendMail(mail(2));
    expect(server.accepted.map((m) => m.messageId)).toEqual(['<m2@mailpacer.test>']);
    expect(server.stats().rejected).toEqual({ 535: 1 });
  });

  test('without auth set, any credentials are accepted', async () => {
    const server = await start();
    await connect(server, { auth: { user: 'anyone', pass: 'anything' } }).sendMail(mail(1));
    expect(server.accepted).toHaveLength(1);
  });

  test('transientFailureRate refuses messages at the end of DATA with 451', async () => {
    const server = await start({ transientFailureRate: 1 });
    const err = await failure(connect(server).sendMail(mail(1)));
    expect(err).toMatchObject({ code: 'EMESSAGE', command: 'DATA', responseCode: 451, response: '451 4.3.0 Temporary failure, try again' });
    expect(server.accepted).toHaveLength(0);
  });

  test('dropConnectionRate drops the connection at the end of DATA without accepting', async () => {
    const server = await start({ dropConnectionRate: 1 });
    const err = await failure(connect(server).sendMail(mail(1)));
    expect(err).toMatchObject({ code: 'ECONNECTION', command: 'CONN', message: 'Connection closed unexpectedly' });
    expect(err.responseCode).toBeUndefined();
    expect(server.accepted).toHaveLength(0);
    expect(server.stats()).toMatchObject({ dropped: 1, inDoubt: 0, accepted: 0 });
  });

  test('dropAfterAcceptRate records the message but the client gets an error', async () => {
    const server = await start({ dropAfterAcceptRate: 1 });
    const err = await failure(connect(server).sendMail(mail(1)));
    expect(err).toMatchObject({ code: 'ECONNECTION', command: 'CONN' });
    expect(server.accepted.map((m) => m.messageId)).toEqual(['<m1@mailpacer.test>']);
    expect(server.stats()).toMatchObject({ dropped: 1, inDoubt: 1, accepted: 1 });
  });

  test('the same seed gives the same failures', async () => {
    const outcomes = async (): Promise<string[]> => {
      const server = await start({ seed: 42, transientFailureRate: 0.5 });
      const transport = connect(server, { pool: true });
      const results: string[] = [];
      for (let n = 0; n < 12; n++) {
        results.push(await transport.sendMail(mail(n)).then(() => 'ok', () => 'failed'));
      }
      return results;
    };
    const first = await outcomes();
    expect(first).toContain('ok');
    expect(first).toContain('failed');
    expect(await outcomes()).toEqual(first);
  });

  test('latencyMs delays the reply to the end of DATA', async () => {
    const server = await start({ latencyMs: 150 });
    const transport = connect(server, { pool: true });
    await transport.sendMail(mail(0));
    const started = Date.now();
    await transport.sendMail(mail(1));
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  test('counts() and missing() find duplicates and lost messages', async () => {
    const server = await start();
    const transport = connect(server, { pool: true });
    await transport.sendMail(mail(1));
    await transport.sendMail(mail(1));
    await transport.sendMail(mail(2));

    const counts = server.counts();
    expect(counts.unique).toBe(2);
    expect(counts.duplicates).toBe(1);
    expect(counts.byMessageId.get('<m1@mailpacer.test>')).toBe(2);
    expect(server.missing(['<m1@mailpacer.test>', 'm2@mailpacer.test', '<m9@mailpacer.test>'])).toEqual(['<m9@mailpacer.test>']);
  });

  test('reset() clears records, counters and rate state but keeps open connections', async () => {
    const server = await start({ rate: { max: 1, perMs: 60_000, code: 450 } });
    const pooled = connect(server, { pool: true });
    await pooled.sendMail(mail(1));
    await failure(pooled.sendMail(mail(2)));

    server.reset();
    expect(server.accepted).toHaveLength(0);
    expect(server.stats()).toMatchObject({ accepted: 0, rejected: {}, connections: 1, maxConcurrentConnections: 1 });
    await pooled.sendMail(mail(3));
    expect(server.accepted).toHaveLength(1);
  });

  test('close() releases the port while a pooled client is still connected', async () => {
    const server = await startThrottlingSmtpServer();
    const pooled = connect(server, { pool: true });
    await pooled.sendMail(mail(1));
    expect(server.stats().connections).toBe(1);

    await server.close();
    await server.close(); // idempotent
    const listener = createServer();
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(server.port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => listener.close(resolve));
  });

  test('keeps up with a pooled client sending thousands of messages', async () => {
    const server = await start();
    const pooled = nodemailer.createTransport({ ...server.transportOptions(), pool: true, maxConnections: 8, maxMessages: Infinity });
    transports.push(pooled);
    const ids = Array.from({ length: 2_000 }, (_, n) => n);
    await Promise.all(ids.map((n) => pooled.sendMail(mail(n))));

    expect(server.counts()).toMatchObject({ unique: 2_000, duplicates: 0 });
    expect(server.missing(ids.map((n) => `<m${n}@mailpacer.test>`))).toEqual([]);
  });

  test('names the bad option', async () => {
    await expect(startThrottlingSmtpServer({ transientFailureRate: 2 })).rejects.toThrow(/options\.transientFailureRate: expected a probability/);
    await expect(startThrottlingSmtpServer({ rate: { max: 1, perMs: 0 } })).rejects.toThrow(/options\.rate\.perMs/);
    await expect(startThrottlingSmtpServer({ script: [{ match: 'x', code: 250, reply: 'ok' }] })).rejects.toThrow(/options\.script\[0\]\.code/);
    // Each of these started a server that then misbehaved quietly: a typo changed nothing, a 250
    // greylist reply left the recipient out of the envelope, a rule at 'DATA' never fired, a
    // fractional count let two sessions in, a RegExp for greylistRecipients answered 451 to all.
    const bad: Array<[unknown, RegExp]> = [
      [{ maxConnection: 1 }, /options\.maxConnection: unknown option \(known: maxConnections, /],
      [{ maxConnections: 1.5 }, /options\.maxConnections: expected a whole number >= 1 or Infinity, got 1\.5/],
      [{ greylist: { delayMs: 10, reply: '250 OK' } }, /options\.greylist\.reply: expected a reply with code 450 or 451 .*, got "250 OK"/],
      [{ greylist: { delayMs: 10, reply: '550 5.7.1 no' } }, /options\.greylist\.reply: expected a reply with code 450 or 451/],
      [{ rate: { max: 1, perMs: 1000, code: 550 } }, /options\.rate\.code: expected 421, 450 or 451, got 550/],
      [{ greylist: { delayMs: 10 }, greylistRecipients: /@x\.org$/ }, /options\.greylistRecipients: expected a function \(address\) => boolean, got \/@x\\\.org\$\//],
      [{ script: [{ match: 'x@y.org', code: 450, reply: 'busy', at: 'DATA' }] }, /options\.script\[0\]\.at: expected 'rcpt' or 'data', got "DATA"/],
      [{ script: [{ match: 'x@y.org', code: 450, reply: 'busy', times: 1.5 }] }, /options\.script\[0\]\.times: expected a whole number >= 0 or Infinity, got 1\.5/],
      [{ script: [{ code: 450, reply: 'busy' }] }, /options\.script\[0\]\.match: expected an address, a RegExp or a function/],
    ];
    for (const [options, message] of bad) await expect(startThrottlingSmtpServer(options as ThrottlingSmtpServerOptions)).rejects.toThrow(message);
    // Infinity stays a valid count.
    await expect(start({ maxConnections: Infinity, script: [{ match: 'x@y.org', code: 450, reply: 'busy', times: Infinity }] })).resolves.toBeDefined();
  });

  test("a rate reply's own leading code does not replace the rate's code (421 unless code is set)", async () => {
    const server = await start({ rate: { max: 1, perMs: 60_000, reply: '450 4.7.0 slow down' } });
    const transport = connect(server);
    await transport.sendMail(mail(1));
    const err = await failure(transport.sendMail(mail(2)));
    expect(err).toMatchObject({ responseCode: 421, response: '421 4.7.0 slow down' });
  });

  test('counts() does not count a message sent in parts (recipients refused for now, then sent again) as a duplicate', async () => {
    const server = await start({ script: [{ match: 'b@example.org', code: 450, reply: '450 4.2.1 Mailbox busy', times: 1 }] });
    const transport = connect(server);
    const message = mail(1, { to: ['a@example.org', 'b@example.org'] });
    // The first transaction reaches a@ only (b@ is refused for now); the second, b@ alone.
    const first = (await transport.sendMail(message)) as { accepted: string[]; rejected: string[] };
    expect(first).toMatchObject({ accepted: ['a@example.org'], rejected: ['b@example.org'] });
    await transport.sendMail({ ...message, to: 'b@example.org' });
    expect(server.counts()).toMatchObject({ unique: 1, duplicates: 0 });
    expect(server.counts().byMessageId.get('<m1@mailpacer.test>')).toBe(2);
    // The same message to a@ again is a duplicate.
    await transport.sendMail({ ...message, to: 'A@example.org' });
    expect(server.counts()).toMatchObject({ unique: 1, duplicates: 1 });
  });
});
