/**
 * Redis calls per message, counted on the client: a mailer on its own ioredis client whose
 * `sendCommand` counts every command, one provider with 4 connections, 1,000 messages to
 * `startThrottlingSmtpServer()` with no limits; with and without a rate window, through `send()`
 * and through `sendBatch()` with a batch id (the ledger). Quoted in docs/redis.md.
 *
 *   npx tsx bench/redis-calls.ts [redis://127.0.0.1:6379]
 */
import { Redis } from 'ioredis';
import { createMailer } from '../src/index.js';
import { startThrottlingSmtpServer } from '../src/testing/index.js';

const url = process.argv[2] ?? 'redis://127.0.0.1:6379';
const N = 1_000;
const server = await startThrottlingSmtpServer();
const cases = [
  { label: '`send()`, provider with a rate window', rate: { max: 30_000, per: '1s' }, batch: false },
  { label: '`send()`, provider without a rate window', rate: undefined, batch: false },
  { label: '`sendBatch()` with an `id`, with a rate window', rate: { max: 30_000, per: '1s' }, batch: true },
  { label: '`sendBatch()` with an `id`, without a rate window', rate: undefined, batch: true },
] as const;

for (const { label, rate, batch } of cases) {
  const client = new Redis(url);
  let calls = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((...args: Parameters<typeof send>) => {
    calls++;
    return send(...args);
  }) as typeof client.sendCommand;
  const keyPrefix = `redis-calls-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const mailer = createMailer({ redis: client, keyPrefix, providers: { p: { transport: server.transportOptions(), maxConnections: 4, ...(rate && { rate }) } } });
  await new Promise((resolve) => setTimeout(resolve, 300)); // start-up calls (script loads, registration) are not counted
  const before = calls;
  const messages = Array.from({ length: N }, (_, i) => ({ id: `m${i}`, from: 'bench@mailpacer.test', to: `reader-${i}@example.test`, subject: 'Hello', text: 'Hello' }));
  const started = Date.now();
  if (batch) await mailer.sendBatch(messages, { id: `${keyPrefix}-batch` });
  else await Promise.all(messages.map((message) => mailer.send(message)));
  console.log(`${label}: ${((calls - before) / N).toFixed(3)} calls per message (${N} messages in ${Date.now() - started} ms)`);
  await mailer.close();
  const keys = await client.keys(`${keyPrefix}*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
}
await server.close();
