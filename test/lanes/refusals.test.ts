import { describe, expect, it } from 'vitest';
import { useCleanup } from '../helpers/setup.js';

const { mailer, plainServer, server } = useCleanup();

/** A plain SMTP server that answers the first `refuse` MAIL FROMs as Postfix's anvil does, and notes when each MAIL FROM came. */
async function refusingServer(refuse: number) {
  const mailFrom: number[] = [];
  const { port, transactions } = await plainServer({
    onMailFrom(_address, _session, callback) {
      mailFrom.push(performance.now());
      if (mailFrom.length > refuse) return callback();
      const error = new Error('Error: too much mail from 127.0.0.1') as Error & { responseCode: number };
      error.responseCode = 450;
      callback(error);
    },
  });
  return { port, mailFrom, accepted: transactions };
}

describe('a lane refused at MAIL FROM', () => {
  it("paces the connection's next MAIL FROM after a refusal instead of sending it at once", async () => {
    // A receiver that counts MAIL FROMs (Postfix's smtpd_client_message_rate_limit) sees every
    // attempt, refused ones too: after a refusal the next attempt waits for the lane's next slot.
    const srv = await refusingServer(4);
    const m = mailer({
      providers: { local: { transport: { host: '127.0.0.1', port: srv.port, secure: false, ignoreTLS: true }, maxConnections: 1, rate: { max: 4, per: '1s' } } },
      retry: { minDelay: '20ms', maxDelay: '50ms' },
    });
    const decisions: string[] = [];
    m.on('retry', (e) => decisions.push(e.decision));

    const report = await m.sendBatch(Array.from({ length: 6 }, (_, i) => ({ id: `m${i}`, from: 'news@example.org', to: `reader${i}@example.net`, subject: 'Hi', text: 'Hello' })));

    expect(report).toMatchObject({ sent: 6, failed: 0 });
    expect(srv.accepted).toHaveLength(6);
    expect(decisions).toEqual(['rate-limited', 'rate-limited', 'rate-limited', 'rate-limited']);
    const gaps = srv.mailFrom.slice(1).map((at, i) => at - srv.mailFrom[i]!);
    // The lane's slots are 250 ms apart at 4/s (longer once it slows down). The first MAIL FROM
    // went on a new connection, whose slot is booked only once DATA is accepted, so it booked none;
    // the second books the lane's first slot and may go at once. Every one after waits for its slot.
    expect(gaps.length).toBeGreaterThanOrEqual(9);
    expect(gaps.slice(1).filter((gap) => gap < 125)).toEqual([]);
  });
});

describe('a lane paused by a reply that names a long delay', () => {
  // A timer longer than 2^31 - 1 ms (24.8 days) fires after 1 ms in Node.js, with a warning: the
  // lane's wake-up for a pause of 30 days came back every millisecond (and, on Redis, asked Redis each time).
  // A quota's named delay is capped at a day or the provider's longest window (30 days here), a
  // rate limit's at maxRetryTime.
  it('waits for it without timers that overflow', async () => {
    const srv = await server({ script: [{ match: 'first@example.net', code: 454, reply: '454 Throttling failure: Daily message quota exceeded, try again in 30 days', times: 1, at: 'data' }] });
    const overflows: string[] = [];
    const onWarning = (warning: Error) => void (warning.name === 'TimeoutOverflowWarning' && overflows.push(warning.message));
    process.on('warning', onWarning);
    try {
      const m = mailer({ providers: { main: { transport: srv.transportOptions(), rate: [{ max: 100, per: '1s' }, { max: 1_000_000, per: '30d' }] } }, retry: { retries: 2, minDelay: '10ms', maxDelay: '50ms', maxRetryTime: '5s' } });
      const pauses: number[] = [];
      const paused = new Promise<void>((resolve) => m.on('throttle', (event) => event.action === 'pause' && (pauses.push(event.pausedUntil), resolve())));
      // It waits behind the pause (a quota pause does not run down its retry time).
      const first = m.send({ from: 'news@example.org', to: 'first@example.net', subject: 'a', text: 'a' }).catch(() => 'ended');
      await paused;
      expect(pauses).toHaveLength(1);
      expect(pauses[0]! - Date.now()).toBeGreaterThan(29 * 86_400_000);
      // The next message waits behind the pause too (the lane's wake-up is armed now).
      const second = m.send({ from: 'news@example.org', to: 'second@example.net', subject: 'b', text: 'b' }).catch(() => 'ended');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(srv.counts().unique).toBe(0);
      await m.close();
      expect([await first, await second]).toEqual(['ended', 'ended']);
      await new Promise((resolve) => setImmediate(resolve));
      expect(overflows).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
