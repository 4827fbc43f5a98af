import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterEach } from 'vitest';
import { createMailer, type Mailer, type MailerOptions } from '../../src/index.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer, type ThrottlingSmtpServerOptions } from '../../src/testing/index.js';

/**
 * Per-test resources, released after each test in reverse order: call once at the top of a test
 * file. `server()` and `mailer()` register what they start.
 */
export function useCleanup() {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });
  return {
    defer(fn: () => Promise<unknown>) {
      cleanup.push(fn);
    },
    async server(options: ThrottlingSmtpServerOptions = {}): Promise<ThrottlingSmtpServer> {
      const srv = await startThrottlingSmtpServer(options);
      cleanup.push(() => srv.close());
      return srv;
    },
    mailer(options: MailerOptions): Mailer {
      const m = createMailer(options);
      cleanup.push(() => m.close());
      return m;
    },
    /**
     * A plain `smtp-server` on 127.0.0.1 (no STARTTLS, no auth required) that takes every message,
     * with the caller's envelope handlers (`onMailFrom`, `onRcptTo`) to refuse some. `transactions`:
     * the recipients of each message it received in full, in order. `reply`, when given, is asked
     * after a message is in (and recorded) how to answer it, and may wait: `'accept'` (250),
     * `'drop'` (the connection is cut instead: the client cannot know it was taken), or a refusal.
     */
    async plainServer(
      handlers: Pick<SMTPServerOptions, 'onMailFrom' | 'onRcptTo'> = {},
      reply?: (to: string[]) => Promise<'accept' | 'drop' | { responseCode: number; message: string }>,
    ): Promise<{ port: number; transactions: string[][] }> {
      const transactions: string[][] = [];
      const sockets = new Map<number | undefined, Socket>();
      const plain = new SMTPServer({
        authOptional: true,
        disabledCommands: ['STARTTLS'],
        logger: false,
        ...handlers,
        onData(stream, session, callback) {
          stream.resume();
          stream.on('end', () => {
            const to = session.envelope.rcptTo.map((r) => r.address);
            transactions.push(to);
            if (!reply) return callback();
            void reply(to).then((answer) => {
              if (answer === 'accept') return callback();
              if (answer === 'drop') return void sockets.get(session.remotePort)?.destroy();
              callback(Object.assign(new Error(answer.message), { responseCode: answer.responseCode }));
            });
          });
        },
      });
      plain.server.on('connection', (socket: Socket) => sockets.set(socket.remotePort, socket));
      await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
      cleanup.push(() => new Promise((resolve) => plain.close(() => resolve(undefined))));
      return { port: (plain.server.address() as { port: number }).port, transactions };
    },
  };
}
