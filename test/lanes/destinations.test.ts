import type { SMTPServerSession } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import type { ThrottlingSmtpServer } from '../../src/testing/index.js';
import { useCleanup } from '../helpers/setup.js';

const { server, mailer, plainServer } = useCleanup();

const msg = (to: string | string[]) => ({ from: 'news@example.org', to, subject: 'Hi', text: 'Hello' });

/** Messages per second of one group's recipients, from the server's record of accepted mail. */
function rate(srv: ThrottlingSmtpServer, domain: string): number {
  const times = srv.accepted.filter((a) => a.to.every((t) => t.endsWith(`@${domain}`))).map((a) => a.at).sort((a, b) => a - b);
  return times.length < 2 ? 0 : ((times.length - 1) * 1_000) / (times.at(-1)! - times[0]!);
}

describe('destination groups', () => {
  it('slows only the lane whose receiver answers 421: the other group keeps its pace', async () => {
    // One smarthost; mail to gmail.com is refused with 421 (rate) 60 times, mail to example.net never.
    const srv = await server({ script: [{ match: (rcpt) => rcpt.endsWith('@gmail.com'), code: 421, reply: '421 4.7.28 Our system has detected an unusual rate of mail, temporarily rate limited', times: 60 }] });
    const m = mailer({
      providers: { relay: { transport: srv.transportOptions(), rate: { max: 500, per: '1s' }, maxConnections: 8 } },
      destinations: { gmail: { domains: ['gmail.com'], rate: { max: 40, per: '1s' }, maxConnections: 4 }, net: { domains: ['example.net'], rate: { max: 40, per: '1s' }, maxConnections: 4 }, microsoft: false, yahoo: false, icloud: false },
      retry: { minDelay: '100ms', maxDelay: '1s' },
    });
    const throttled: string[] = [];
    m.on('throttle', (e) => throttled.push(e.lane));

    const sends = Array.from({ length: 160 }, (_, i) => m.send(msg(i % 2 ? `user${i}@gmail.com` : `user${i}@example.net`)));
    const results = await Promise.allSettled(sends);

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(srv.counts()).toMatchObject({ unique: 160, duplicates: 0 });
    expect(new Set(throttled)).toEqual(new Set(['relay:gmail']));
    const stats = Object.fromEntries((await m.stats()).map((s) => [s.lane, s]));
    expect(stats['relay:gmail']!.effectiveRate).toBeLessThan(40);
    expect(stats['relay:net']!.effectiveRate).toBe(40);
    // The untroubled group delivered near its configured 40/s; generous bounds, not a timing test.
    expect(rate(srv, 'example.net')).toBeGreaterThan(40 * 0.6);
    expect(rate(srv, 'example.net')).toBeGreaterThan(rate(srv, 'gmail.com'));
  });

  it('finds a custom domain hosted at Google by its MX, through an injected resolver, once per domain', async () => {
    const srv = await server();
    const lookups: string[] = [];
    const m = mailer({
      providers: { main: { transport: srv.transportOptions() } },
      destinations: {},
      dns: {
        resolveMx: async (domain) => {
          lookups.push(domain);
          if (domain === 'startup.example') return [{ exchange: 'alt1.aspmx.l.google.com', priority: 5 }, { exchange: 'aspmx.l.google.com.', priority: 1 }];
          if (domain === 'corp.example') return [{ exchange: 'corp-example.mail.protection.outlook.com', priority: 0 }];
          throw Object.assign(new Error('queryMx ENOTFOUND'), { code: 'ENOTFOUND' });
        },
      },
    });
    for (const to of ['a@startup.example', 'b@startup.example', 'c@corp.example', 'd@gmail.com', 'e@nowhere.example', 'f@nowhere.example']) await m.send(msg(to));
    const sent = Object.fromEntries((await m.stats()).map((s) => [s.lane, s.sent]));
    expect(sent).toMatchObject({ 'main:gmail': 3, 'main:microsoft': 1, 'main:*': 2, 'main:yahoo': 0, 'main:icloud': 0 });
    // gmail.com is known by its domain: no lookup. Each other domain is looked up once (failures are cached too).
    expect(lookups.sort()).toEqual(['corp.example', 'nowhere.example', 'startup.example']);
  });

  it("keeps a built-in group's domains when only its limits are overridden", async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, destinations: { gmail: { rate: { max: 3, per: '1s' } } } });
    await m.send(msg('someone@googlemail.com'));
    const lanes = Object.fromEntries((await m.stats()).map((s) => [s.lane, s]));
    expect(lanes['main:gmail']).toMatchObject({ sent: 1, configuredRate: 3 });
  });

  it('sends a message with recipients in several groups through the strictest group', async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions() } }, destinations: { icloud: { domains: ['icloud.com'], rate: { max: 2, per: '1s' } } } });
    const info = await m.send(msg(['a@gmail.com', 'b@icloud.com', 'c@example.net']));
    expect(info.accepted).toHaveLength(3);
    const sent = Object.fromEntries((await m.stats()).map((s) => [s.lane, s.sent]));
    expect(sent['main:icloud']).toBe(1);
    expect(sent['main:gmail']).toBe(0);
  });

  it('keeps every lane of a provider under the provider\'s own limits', async () => {
    const srv = await server();
    const m = mailer({ providers: { main: { transport: srv.transportOptions(), rate: { max: 20, per: '1s' }, maxConnections: 2 } }, destinations: {} });
    await Promise.all(Array.from({ length: 60 }, (_, i) => m.send(msg([`u${i}@gmail.com`, `u${i}@yahoo.com`, `u${i}@example.net`][i % 3]!))));
    expect(srv.counts().unique).toBe(60);
    // 20/s for the whole provider, whichever lanes the mail went through. Pacing spaces the starts of
    // sends; the server records acceptances, which a new connection's handshake (smtp-server waits
    // ~100 ms before its greeting) delays, so a window may see a send or two bunch up.
    expect(srv.maxInAnyWindow(1_000)).toBeLessThanOrEqual(22);
    expect(srv.maxInAnyWindow(3_000)).toBeLessThanOrEqual(62);
    expect(srv.stats().maxConcurrentConnections).toBeLessThanOrEqual(2);
  });
});

describe('envelope limits', () => {
  function picky(maxPerTransaction: number) {
    return plainServer({
      onRcptTo(address, session: SMTPServerSession, callback) {
        if (session.envelope.rcptTo.length >= maxPerTransaction) return callback(Object.assign(new Error('4.5.3 Too many recipients'), { responseCode: 452 }));
        callback();
      },
    });
  }

  it('splits the envelope after "452 4.5.3 Too many recipients" and sends the rest', async () => {
    const { port, transactions } = await picky(2);
    const m = mailer({ providers: { main: { transport: { host: '127.0.0.1', port, ignoreTLS: true } } }, retry: { minDelay: '10ms', maxDelay: '50ms' } });
    const rcpts = ['a@example.net', 'b@example.net', 'c@example.net', 'd@example.net', 'e@example.net'];
    const info = await m.send(msg(rcpts));
    expect([...(info.accepted as string[])].sort()).toEqual(rcpts);
    expect(info.rejected).toEqual([]);
    expect(transactions.flat().sort()).toEqual(rcpts);
    expect(transactions.every((t) => t.length <= 2)).toBe(true);
  });

  it("respects a provider's maxRecipientsPerMessage", async () => {
    const { port, transactions } = await picky(100);
    const m = mailer({ providers: { main: { transport: { host: '127.0.0.1', port, ignoreTLS: true }, maxRecipientsPerMessage: 2 } } });
    const rcpts = ['a@example.net', 'b@example.net', 'c@example.net', 'd@example.net', 'e@example.net'];
    const info = await m.send(msg(rcpts));
    expect(info.accepted).toHaveLength(5);
    expect(transactions.map((t) => t.length)).toEqual([2, 2, 1]);
  });
});
