// Destination groups: receiving-side limits by recipient domain or MX host, on top of the
// provider's. The built-in groups (gmail, microsoft, yahoo, icloud), one switched off, plus a
// custom one; an injected MX resolver stands in for DNS, so the run is repeatable offline.
// Run: npx tsx examples/destinations.ts
import { createMailer } from 'mailpacer';
import { startThrottlingSmtpServer } from 'mailpacer/testing';

// One smarthost (say, your own Postfix relay) that hands the mail on to every receiver.
const relay = await startThrottlingSmtpServer();

// What DNS would answer for the custom domains below; anything else has no MX.
const MX: Record<string, Array<{ exchange: string; priority: number }>> = {
  'startup.example': [{ exchange: 'alt1.aspmx.l.google.com', priority: 5 }, { exchange: 'aspmx.l.google.com', priority: 1 }], // Google Workspace
  'corp.example': [{ exchange: 'corp-example.mail.protection.outlook.com', priority: 0 }], // Microsoft 365
};
const lookups: string[] = [];

const mailer = createMailer({
  providers: { relay: { transport: relay.transportOptions(), rate: { max: 100, per: '1s' }, maxConnections: 8 } },
  destinations: {
    // Built-ins join in once `destinations` is set; switch one off by name.
    icloud: false,
    // A group of your own: a partner whose server takes 2 messages a second on 1 connection.
    partners: { domains: ['partner.example'], rate: { max: 2, per: '1s' }, maxConnections: 1 },
  },
  dns: {
    async resolveMx(domain) {
      lookups.push(domain);
      const records = MX[domain];
      if (!records) throw Object.assign(new Error(`queryMx ENOTFOUND ${domain}`), { code: 'ENOTFOUND' });
      return records;
    },
  },
});

const recipients = [
  'ann@gmail.com', 'bob@googlemail.com', 'cat@startup.example', // gmail: by domain, and by MX
  'dan@outlook.com', 'eve@corp.example', // microsoft: by domain, and by MX
  'fay@yahoo.com', // yahoo
  'gus@partner.example', 'hal@partner.example', 'ivy@partner.example', // partners
  'joe@me.com', 'kim@elsewhere.example', // icloud is off, no MX: the provider's default lane
];
const messages = [
  ...recipients.map((to, i) => ({ id: `m${i}`, from: 'news@example.org', to, subject: 'Hello', text: 'Hi!' })),
  // Recipients in two groups: one transaction, through the stricter group's lane (partners).
  { id: 'both', from: 'news@example.org', to: ['lee@gmail.com', 'max@partner.example'], subject: 'Hello', text: 'Hi!' },
];

const report = await mailer.sendBatch(messages);
console.log(`sent ${report.sent} of ${report.total} in ${(report.durationMs / 1000).toFixed(1)}s; MX lookups: ${lookups.sort().join(', ')}`);
console.table(
  (await mailer.stats()).map((s) => ({ lane: s.lane, sent: s.sent, 'rate/s': s.configuredRate ?? 'unlimited', connections: s.configuredConnections })),
);

await mailer.close();
await relay.close();
