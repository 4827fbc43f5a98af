// Amazon SES first, a second provider when SES cannot take a message (its quota is spent, or it
// refuses our credentials): route a batch with `route`, stop it and run it again through the other
// provider, and fail a single message over when SES cannot take it.
// Run: npx tsx examples/multi-provider.ts
//   Real providers when SES_USER and FALLBACK_HOST are set (also SES_REGION, SES_PASS,
//   SES_MAX_SEND_RATE, SES_DAILY_QUOTA, FALLBACK_PORT, FALLBACK_USER, FALLBACK_PASS, MAIL_FROM,
//   MAIL_TO); otherwise two local throttling test servers from mailpacer/testing, the "SES" one
//   with a daily quota of 20 messages.
import { createMailer, isAbortedError, isDeliveryError, presets, type DecisionKind, type Message } from 'mailpacer';
import { startThrottlingSmtpServer } from 'mailpacer/testing';

const env = process.env;
const real = Boolean(env.SES_USER && env.FALLBACK_HOST);
// Locally: "SES" accepts 20 messages a day and then answers as SES does when the quota is spent.
const sesServer = real ? undefined : await startThrottlingSmtpServer({ rate: { max: 20, perMs: 86_400_000, code: 451, reply: '4.7.0 Daily message quota exceeded' } });
const fallbackServer = real ? undefined : await startThrottlingSmtpServer();

const ses = presets.ses({
  region: env.SES_REGION ?? 'eu-west-1',
  auth: { user: env.SES_USER ?? 'local', pass: env.SES_PASS ?? 'local' },
  maxSendRate: Number(env.SES_MAX_SEND_RATE ?? 14),
  dailyQuota: Number(env.SES_DAILY_QUOTA ?? 50_000),
});

const mailer = createMailer({
  providers: {
    // The first provider is the default one.
    ses: sesServer ? { ...ses, transport: sesServer.transportOptions() } : ses,
    fallback: {
      transport: fallbackServer
        ? fallbackServer.transportOptions()
        : { host: env.FALLBACK_HOST, port: Number(env.FALLBACK_PORT ?? 587), auth: { user: env.FALLBACK_USER ?? '', pass: env.FALLBACK_PASS ?? '' } },
      rate: { max: 5, per: '1s' },
      maxConnections: 2,
    },
  },
});

/** What SES says when another provider may well succeed: not the message's fault, SES's. */
const FAILOVER = new Set<DecisionKind>(['quota-exceeded', 'auth']);

// SES slows down, pauses or stops through `throttle` events; a quota pause or a stop means "not now".
// Messages waiting for SES's quota stay pending until it admits again (24 hours, for a daily quota:
// a quota pause does not use up their retry time); this signal stops them waiting, to go another way.
let sesUsable = true;
const sesUnusable = new AbortController();
mailer.on('throttle', (e) => {
  if (e.provider === 'ses' && FAILOVER.has(e.decision) && sesUsable) {
    sesUsable = false;
    console.log(`ses: ${e.action} (${e.decision}); the rest goes through fallback`);
    sesUnusable.abort(new Error(`ses: ${e.decision}`));
  }
});

const from = env.MAIL_FROM ?? 'news@example.org';
const subscribers = Array.from({ length: real ? 3 : 40 }, (_, i) => ({ id: `reader-${i}`, email: real ? env.MAIL_TO ?? '' : `reader${i}@example.net` }));
const build = (s: (typeof subscribers)[number]): Message => ({ id: s.id, from, to: s.email, subject: 'November news', text: `Hello ${s.id}` });

// 1. The newsletter through SES, stopped when SES cannot take more: what was not sent stays pending.
const batch = { id: 'newsletter-demo', build, concurrency: 10 };
const first = await mailer.sendBatch(subscribers, { ...batch, route: () => 'ses', signal: sesUnusable.signal });
console.log(`batch through ses: ${first.sent} sent, ${first.failed} failed, ${first.pending} pending`);

// The same batch again, through fallback: under the same id the ledger skips what went out and
// sends the rest (and the messages that failed with `quota-exceeded` or `auth`, if any).
if (first.pending > 0 || first.failures.some((f) => FAILOVER.has(f.decision))) {
  const again = await mailer.sendBatch(subscribers, { ...batch, route: () => 'fallback' });
  console.log(`batch through fallback: ${again.sent} sent, ${again.skipped} already sent, ${again.failed} failed`);
}

// 2. One message on its own: through SES, unless SES cannot take it (it fails the message for its
// own reasons, or stops it waiting through the signal above); through fallback then.
async function sendWithFailover(message: Message) {
  if (sesUsable) {
    try {
      return await mailer.send({ ...message, provider: 'ses' }, { signal: sesUnusable.signal });
    } catch (error) {
      const sesCannot = isAbortedError(error) || (isDeliveryError(error) && FAILOVER.has(error.decision));
      if (!sesCannot) throw error;
      console.log(`ses could not take ${message.id ?? 'a message'}; sending it through fallback`);
    }
  }
  return mailer.send({ ...message, provider: 'fallback' });
}
const info = await sendWithFailover({ id: 'password-reset-1', from, to: real ? env.MAIL_TO ?? '' : 'someone@example.net', subject: 'Reset your password', text: 'Your link: …' });
console.log(`password reset: accepted by ${info.provider} after ${info.attempts} attempt(s)`);

if (sesServer && fallbackServer) console.log(`servers accepted: ses ${sesServer.counts().unique}, fallback ${fallbackServer.counts().unique}; duplicates ${sesServer.counts().duplicates + fallbackServer.counts().duplicates}`);
await mailer.close();
await sesServer?.close();
await fallbackServer?.close();
