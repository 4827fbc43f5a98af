import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { createMailer, type BatchReport, type Message } from '../index.js';
import { loadConfigFile } from './config-file.js';
import { formatCsv, readCsvFile, type CsvRow } from './csv.js';
import { count, duration } from './format.js';
import { createProgressView, type Output } from './progress.js';
import { fileSafe, openStateFile, type StateFile } from './state-file.js';
import { checkColumns, parseTemplate, render } from './template.js';

export interface SendCommandOptions {
  /** Config module or JSON: the `createMailer` options. */
  config: string;
  /** The list: a CSV with an `email` column; the other columns are template fields. */
  to: string;
  /** The template file: `.html`/`.htm` is sent as HTML, anything else as text. */
  template: string;
  /** @default the template's `Subject:` line */
  subject?: string;
  from: string;
  /** @default derived from the list's path, the template and the subject */
  batchId?: string;
  /** @default `failures-<batch-id>.csv` next to the list, written when anything failed */
  failures?: string;
  provider?: string;
  verbose?: boolean;
  out?: Output;
  tty?: boolean;
  signal?: AbortSignal;
}

/** A problem with the command line or its files, found before anything is sent. */
export class SendInputError extends Error {
  override name = 'SendInputError' as const;
}

/**
 * `mailpacer send`: one message per row of the list, rendered from the template, sent as one
 * resumable batch. Resolves with the exit status: 0 when every message was sent (or had been),
 * 1 when any failed or is in doubt, 130 when stopped by the signal.
 */
export async function runSend(options: SendCommandOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const list = resolve(options.to);
  const config = await loadConfigFile(options.config);
  const templateText = await readFile(options.template, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new SendInputError(`cannot read template ${options.template}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
  const template = parseTemplate(templateText, { html: /^\.html?$/i.test(extname(options.template)) });
  const subject = options.subject ?? template.subject;
  if (subject === undefined) throw new SendInputError('no subject: pass --subject, or start the template with a "Subject: ..." line');
  const batchId = options.batchId ?? `${basename(list, extname(list))}-${hash(`${list}\0${templateText}\0${subject}`).slice(0, 10)}`;

  // createMailer validates the config (a ConfigError names the bad option) before the list is read.
  const mailer = createMailer(config);
  if (options.provider !== undefined && !Object.hasOwn(config.providers, options.provider)) {
    await mailer.close();
    throw new SendInputError(`unknown provider "${options.provider}" (the config has: ${Object.keys(config.providers).join(', ')})`);
  }
  // With Redis the mailer's ledger remembers the batch; without, a state file next to the list does.
  const state = config.redis === undefined ? openStateFile(dirname(list), batchId) : undefined;
  let report: BatchReport;
  let done = 0;
  try {
    // A first pass checks every row (and counts them) before anything is sent.
    const rows = (first: boolean) => readCsvFile(list, { required: ['email'], ...(first && { onHeader: (header: string[]) => checkColumns([subject, template.body], header) }) });
    let total = 0;
    for await (const row of rows(true)) {
      render(subject, row.fields, row);
      render(template.body, row.fields, row, { html: template.html });
      if (state?.done.has(idOf(row))) done++;
      else total++;
    }

    out.write(
      state
        ? `batch ${batchId}: ${count(total)} to send${done ? `, ${count(done)} already sent by an earlier run` : ''} (state in ${state.path})\n`
        : `batch ${batchId}: ${count(total)} in the list (ledger in Redis: what an earlier run sent is skipped)\n`,
    );
    const view = createProgressView({ total, stream: out, ...(options.tty !== undefined && { tty: options.tty }) });
    mailer.on('progress', view.update);
    if (state) {
      mailer.on('sent', (e) => {
        if (e.messageId !== undefined) state.record(e.messageId);
      });
    }
    if (options.verbose) {
      mailer.on('retry', (e) => view.log(`retry ${e.messageId}: ${e.decision} ${e.response ?? ''} (in ${duration(e.delayMs)})`));
      mailer.on('throttle', (e) => view.log(`${e.lane}: ${e.action} after ${e.decision}: now ${e.rate.toFixed(1)}/s, ${e.connections} connections`));
      mailer.on('failed', (e) => view.log(`failed ${e.messageId}: ${e.error.message}`));
    }
    const domain = /@([A-Za-z0-9.-]+)>?\s*$/.exec(options.from)?.[1] ?? 'mailpacer.invalid';
    try {
      report = await mailer.sendBatch(pending(rows(false), state), {
        id: batchId,
        total,
        progressInterval: view.intervalMs,
        ...(options.signal && { signal: options.signal }),
        build: (row): Message => ({
          id: idOf(row) || `row ${row.row}`,
          // The same Message-ID on every run of the batch, so a receiver can tell a resend.
          messageId: `<${hash(`${batchId}\0${idOf(row)}`).slice(0, 32)}@${domain}>`,
          from: options.from,
          to: row.fields.email!.trim(),
          subject: render(subject, row.fields, row),
          [template.html ? 'html' : 'text']: render(template.body, row.fields, row, { html: template.html }),
          ...(options.provider !== undefined && { provider: options.provider }),
        }),
      });
    } finally {
      view.stop();
    }
    // In doubt: the server may have the message. Like the Redis ledger, do not resend it blindly.
    for (const id of report.inDoubtIds) state?.record(id);
  } finally {
    await mailer.close();
    state?.close();
  }

  out.write(`\nsent ${count(report.sent)}, failed ${count(report.failed)}, skipped ${count(report.skipped + done)}, in doubt ${count(report.inDoubt)}${report.pending ? `, not sent yet ${count(report.pending)}` : ''} in ${duration(report.durationMs)}\n`);
  if (report.inDoubt) out.write(`in doubt (the server may have accepted them; not resent; listed in the state file): ${report.inDoubtIds.slice(0, 5).join(', ')}${report.inDoubt > 5 ? ', ...' : ''}\n`);
  if (options.failures !== undefined || report.failed + report.inDoubt > 0) {
    const path = resolve(options.failures ?? join(dirname(list), `failures-${fileSafe(batchId)}.csv`));
    await writeFile(path, failuresCsv(report));
    out.write(`failures written to ${path}\n`);
  }
  if (report.aborted || report.pending) {
    out.write(`stopped: run the same command${options.batchId ? '' : ` with --batch-id ${batchId}`} to send the rest\n`);
    return 130;
  }
  return report.failed + report.inDoubt > 0 ? 1 : 0;
}

/** The rows a state file does not list yet. */
async function* pending(rows: AsyncIterable<CsvRow>, state: StateFile | undefined): AsyncGenerator<CsvRow> {
  for await (const row of rows) if (!state?.done.has(idOf(row))) yield row;
}

/** A recipient's idempotency key: the address, trimmed and lower-cased. */
const idOf = (row: CsvRow): string => (row.fields.email ?? '').trim().toLowerCase();

const hash = (text: string): string => createHash('sha256').update(text).digest('hex');

function failuresCsv(report: BatchReport): string {
  const rows = report.failures.map((f) => [f.id, f.to.join(' ') || f.id, f.decision, f.response ?? f.message]);
  for (const id of report.inDoubtIds) rows.push([id, id, 'in-doubt', 'no reply after the message went out: the server may have accepted it; not resent']);
  return formatCsv(['id', 'email', 'decision', 'response'], rows);
}
