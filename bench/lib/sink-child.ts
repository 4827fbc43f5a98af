/**
 * The fallback receiver of the unthrottled scenario when Postfix's `smtp-sink` is missing:
 * `startThrottlingSmtpServer()` with no limits, in a process of its own so that its CPU is not
 * counted as the client's. Prints `{"port":N}`; on a `stop` line on stdin, closes and prints
 * `{"received":N}`, then exits.
 */
import { createInterface } from 'node:readline';
import { startThrottlingSmtpServer } from '../../src/testing/index.js';

const server = await startThrottlingSmtpServer();
process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stop') return;
  const received = server.stats().accepted;
  void server.close().then(() => {
    process.stdout.write(`${JSON.stringify({ received })}\n`, () => process.exit(0));
  });
});
