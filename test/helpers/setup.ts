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
  };
}
