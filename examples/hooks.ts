// Watches retries, slow-downs and failures through hooks and events.
// Run: npx tsx examples/hooks.ts
import { createMailer, type RetryEvent, type ThrottleEvent } from 'mailpacer';
import { startThrottlingSmtpServer } from 'mailpacer/testing';

// A receiver that takes 10 messages a second and answers 421 beyond that.
const server = await startThrottlingSmtpServer({ rate: { max: 10, perMs: 1_000 } });

const mailer = createMailer({
  providers: { main: { transport: server.transportOptions(), rate: { max: 25, per: '1s' }, maxConnections: 3 } },
  retry: { minDelay: '250ms', maxDelay: '5s' },
  hooks: {
    onRetry(e: RetryEvent) {
      console.log(`retry #${e.attempt} of ${e.messageId} in ${e.delayMs}ms: ${e.decision} (${e.response ?? e.responseCode})`);
    },
    onThrottle(e: ThrottleEvent) {
      console.log(`lane ${e.lane}: ${e.action}, now ${e.rate.toFixed(1)}/s on ${e.connections} connection(s)`);
    },
  },
});

// The same events, as listeners.
mailer.on('failed', (e) => console.error(`failed ${e.messageId}: ${e.error.message}`));
let sent = 0;
mailer.on('sent', () => sent++);

await Promise.allSettled(
  Array.from({ length: 60 }, (_, i) => mailer.send({ id: `msg-${i}`, from: 'news@example.org', to: `reader${i}@example.net`, subject: 'Hi', text: 'Hello' })),
);
console.log(`sent ${sent}; server saw ${server.stats().replies421} × 421`);
console.table(await mailer.stats());
await mailer.close();
await server.close();
