// Sends one message through a paced, retried provider.
// Run: npx tsx examples/send-one.ts   (uses SMTP_HOST/SMTP_PORT/SMTP_USER/SMTP_PASS when set,
// otherwise a local throttling test server from mailpacer/testing)
import { createMailer, isDeliveryError } from 'mailpacer';
import { startThrottlingSmtpServer } from 'mailpacer/testing';

const local = process.env.SMTP_HOST ? undefined : await startThrottlingSmtpServer({ greylist: { delayMs: 500 } });
const transport = local
  ? local.transportOptions()
  : { host: process.env.SMTP_HOST, port: Number(process.env.SMTP_PORT ?? 587), auth: { user: process.env.SMTP_USER ?? '', pass: process.env.SMTP_PASS ?? '' } };

const mailer = createMailer({
  providers: { main: { transport, rate: { max: 10, per: '1s' }, maxConnections: 2 } },
  retry: { greylistDelay: '1s' },
});

try {
  const info = await mailer.send({ from: 'news@example.org', to: 'reader@example.net', subject: 'Hello', text: 'Sent by mailpacer.' });
  console.log(`accepted after ${info.attempts} attempt(s): ${info.response}`);
} catch (error) {
  if (isDeliveryError(error)) console.error(`not delivered (${error.decision}): ${error.message}`);
  else throw error;
} finally {
  await mailer.close();
  await local?.close();
}
