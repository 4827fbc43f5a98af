import { createMailer, type DecisionKind, type MailerOptions } from '../index.js';
import { startThrottlingSmtpServer } from '../testing/index.js';
import { count, duration } from './format.js';
import { createProgressView, type Output } from './progress.js';

export interface DemoOptions {
  /** Newsletter recipients. @default 2000 */
  recipients?: number;
  /** Where the progress and the summary go. @default process.stdout */
  out?: Output;
  /** Live bar or progress lines. @default whether `out` is a terminal */
  tty?: boolean;
  /** Redis URL for shared limits. @default process.env.REDIS_URL */
  redis?: string | undefined;
  /** Seed of the server's random failures. @default 2026 */
  seed?: number;
}

export interface DemoResult {
  delivered: number;
  failed: number;
  inDoubt: number;
  retries: Partial<Record<DecisionKind, number>>;
  replies421: number;
  durationMs: number;
  lost: number;
  duplicated: number;
  /** 0 when nothing was lost or duplicated. */
  exitCode: number;
}

/**
 * The demo: a 2,000-recipient newsletter through mailpacer to a local SMTP server that throttles
 * like a real receiver. mailpacer is configured above what the server allows (100/s and 6
 * connections against 60/s and 3), so the 421s and the slow-down they cause are visible.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const recipients = options.recipients ?? 2_000;
  const out = options.out ?? process.stdout;
  const redis = 'redis' in options ? options.redis : process.env.REDIS_URL;
  const server = await startThrottlingSmtpServer({
    maxConnections: 3,
    rate: { max: 60, perMs: 1_000 },
    greylist: { delayMs: 2_000 },
    // About 5% of recipients are greylisted: every twentieth subscriber.
    greylistRecipients: (address) => Number(/(\d+)@/.exec(address)?.[1]) % 20 === 0,
    transientFailureRate: 0.01,
    seed: options.seed ?? 2026,
  });
  const config: MailerOptions = {
    ...(redis ? { redis } : {}),
    providers: { demo: { transport: server.transportOptions(), rate: { max: 100, per: '1s' }, maxConnections: 6 } },
    retry: { minDelay: '250ms', maxDelay: '5s', greylistDelay: '2s' },
  };
  let mailer: ReturnType<typeof createMailer>;
  try {
    mailer = createMailer(config);
  } catch (error) {
    await server.close();
    throw error;
  }
  const retries: Partial<Record<DecisionKind, number>> = {};
  let slowest = { rate: Infinity, connections: Infinity };
  mailer.on('retry', (e) => void (retries[e.decision] = (retries[e.decision] ?? 0) + 1));
  mailer.on('throttle', (e) => void (slowest = { rate: Math.min(slowest.rate, e.rate), connections: Math.min(slowest.connections, e.connections) }));

  out.write(`mailpacer demo: ${count(recipients)} recipients → ${server.url} (receiver allows 3 connections, 60 msg/s, greylists 5%, 1% transient failures)\n`);
  out.write(`mailpacer configured for 6 connections, 100 msg/s (above the receiver's limits), ${redis ? 'limits in Redis' : 'in-process limits'}\n\n`);
  const view = createProgressView({ total: recipients, stream: out, ...(options.tty === undefined ? {} : { tty: options.tty }) });
  mailer.on('progress', view.update);

  const emailOf = new Map<string, string>(); // Message-ID → address, to check the server's record
  try {
    const report = await mailer.sendBatch(subscribers(recipients), {
      id: `demo-${Date.now()}`,
      total: recipients,
      progressInterval: view.intervalMs,
      build: (s) => {
        const messageId = `<newsletter-${s.n}@demo.mailpacer.test>`;
        emailOf.set(messageId, s.email);
        return {
          id: s.email,
          messageId,
          from: 'Mailpacer Demo <news@demo.mailpacer.test>',
          to: s.email,
          subject: 'The November newsletter',
          text: `Hello ${s.name},\n\nThis is the newsletter.\n`,
        };
      },
    });
    view.stop();
    const lanes = await mailer.stats();
    // Lost: not accepted by the server, yet not reported as failed or in doubt either.
    const reported = new Set([...report.failures.map((f) => f.id), ...report.inDoubtIds]);
    const lost = server.missing(emailOf.keys()).filter((id) => !reported.has(emailOf.get(id)!)).length + (recipients - emailOf.size);
    const duplicated = server.counts().duplicates;
    const stats = server.stats();
    const seconds = report.durationMs / 1_000;
    const retryTotal = Object.values(retries).reduce((a, b) => a + b, 0);
    const byReason = Object.entries(retries).sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${count(n)}`).join(', ');
    const lane = lanes[0];
    const lines = [
      '',
      `delivered       ${count(report.sent)} of ${count(recipients)}`,
      `failed          ${count(report.failed)}${report.inDoubt ? `  (in doubt: ${count(report.inDoubt)})` : ''}`,
      `retries         ${count(retryTotal)}${byReason ? `  (${byReason})` : ''}`,
      `421s received   ${count(stats.replies421)}  (${count(stats.connectionsRefused)} refused connections, ${count(stats.replies421 - stats.connectionsRefused)} rate-limit replies)`,
      `adaptation      rate 100/s → lowest ${Number.isFinite(slowest.rate) ? slowest.rate.toFixed(1) : '100'}/s${lane?.effectiveRate ? `, ${lane.effectiveRate.toFixed(1)}/s at the end` : ''}; connections 6 → lowest ${Number.isFinite(slowest.connections) ? slowest.connections : 6}`,
      `effective rate  ${(report.sent / seconds).toFixed(1)} msg/s  (receiver's limit: 60 msg/s)`,
      `time            ${duration(report.durationMs)}`,
      `server record   ${count(stats.accepted)} accepted, peak ${stats.maxConcurrentConnections} connections`,
      `lost: ${lost}, duplicated: ${duplicated}`,
      '',
    ];
    out.write(lines.join('\n'));
    for (const failure of report.failures.slice(0, 5)) out.write(`  failed ${failure.id}: ${failure.decision}: ${failure.response ?? failure.message}\n`);
    return {
      delivered: report.sent,
      failed: report.failed,
      inDoubt: report.inDoubt,
      retries,
      replies421: stats.replies421,
      durationMs: report.durationMs,
      lost,
      duplicated,
      exitCode: lost === 0 && duplicated === 0 ? 0 : 1,
    };
  } finally {
    view.stop();
    await mailer.close();
    await server.close();
  }
}

const address = (n: number) => `subscriber-${String(n).padStart(4, '0')}@example.net`;

/** Stands in for a database cursor: subscribers one at a time. */
async function* subscribers(n: number): AsyncGenerator<{ n: number; email: string; name: string }> {
  for (let i = 1; i <= n; i++) yield { n: i, email: address(i), name: `Subscriber ${i}` };
}
