import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { createMailer, type BatchReport, type Mailer, type Message } from '../index.js';
import { addresses } from '../message.js';
import { loadConfigFile } from './config-file.js';
import { formatCsv, readCsvFile, type CsvRow } from './csv.js';
import { count, duration, errorText, fileProblem } from './format.js';
import { idOf, isBlank, recipientOf } from './list.js';
import { createProgressView, type Output, type ProgressView } from './progress.js';
import { checkWritable, fileSafe, openStateFile, type StateFile } from './state-file.js';
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
  /** One mailbox: `news@example.org` or `News <news@example.org>`. */
  from: string;
  /** @default derived from the list's path, the template and the subject */
  batchId?: string;
  /** @default `failures-<batch-id>.csv` next to the list, written when anything failed */
  failures?: string;
  provider?: string;
  /** Send again the messages in doubt (an earlier run lost the connection after they went out); may duplicate them. @default false */
  resendInDoubt?: boolean;
  verbose?: boolean;
  out?: Output;
  /** Where warnings go (Redis unreachable). @default process.stderr */
  err?: Output;
  tty?: boolean;
  signal?: AbortSignal;
  /**
   * Takes the function to run, synchronously, when the command must quit at once (a second
   * Ctrl-C): it records what can be known and returns the line to print.
   */
  onQuit?: (handler: () => string) => void;
}

/** A problem with the command line or its files, found before anything is sent. */
export class SendInputError extends Error {
  override name = 'SendInputError' as const;
}

const IN_DOUBT_REASON = 'the server may have accepted it; not resent (--resend-in-doubt sends it again, which may duplicate it)';

/**
 * `mailpacer send`: one message per row of the list, rendered from the template, sent as one
 * resumable batch. Resolves with the exit status: 0 when every message was sent (or had been),
 * 1 when any failed or is in doubt, 130 when stopped by the signal.
 */
export async function runSend(options: SendCommandOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const list = resolve(options.to);
  const from = addresses(options.from);
  if (from.length !== 1) throw new SendInputError(`--from ${JSON.stringify(options.from)} is not one address: expected news@example.org or "News <news@example.org>"`);
  const config = await loadConfigFile(options.config);
  const templateText = await readFile(options.template, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new SendInputError(`cannot read template ${options.template}: ${error.code === 'ENOENT' ? 'no such file' : fileProblem(error)}`, { cause: error });
  });
  const template = parseTemplate(templateText, { html: /^\.html?$/i.test(extname(options.template)) });
  const subject = options.subject ?? template.subject;
  if (subject === undefined) throw new SendInputError('no subject: pass --subject, or start the template with a "Subject: ..." line');
  if (subject.trim() === '') throw new SendInputError(options.subject === undefined ? 'the template\'s "Subject:" line is empty: write the subject there, or pass --subject' : '--subject is empty');
  const batchId = options.batchId ?? `${basename(list, extname(list))}-${hash(`${list}\0${templateText}\0${subject}`).slice(0, 10)}`;
  const failuresPath = resolve(options.failures ?? join(dirname(list), `failures-${fileSafe(batchId)}.csv`));

  // createMailer validates the config (a ConfigError names the bad option) before the list is read.
  const mailer = createMailer(config);
  if (options.provider !== undefined && !Object.hasOwn(config.providers, options.provider)) {
    await mailer.close();
    throw new SendInputError(`unknown provider "${options.provider}" (the config has: ${Object.keys(config.providers).join(', ')})`);
  }
  // With Redis the mailer's ledger remembers the batch; without, a state file next to the list does.
  let state: StateFile | undefined;
  let report: BatchReport | undefined;
  let plan: Plan;
  /** This run's messages found in doubt (the others in the report's were in doubt before it). */
  let inDoubtNow = new Set<string>();
  try {
    state = config.redis === undefined ? openStateFile(dirname(list), batchId) : undefined;
    plan = await firstPass(list, options.to, subject, template, state, options);
    if (plan.stopped) {
      out.write('interrupted before anything was sent\n');
      return 130;
    }
    // Files written after sending has begun must be writable before it does.
    for (const [what, path] of [['--failures', failuresPath], ['state file', state?.path]] as const) {
      if (path === undefined) continue;
      try {
        checkWritable(path);
      } catch (error) {
        throw new SendInputError(`cannot write ${what} ${path}: ${fileProblem(error)}`, { cause: error });
      }
    }

    const extra = [
      plan.earlierSent && `${count(plan.earlierSent)} already sent by an earlier run`,
      plan.earlierInDoubt.size && `${count(plan.earlierInDoubt.size)} in doubt since an earlier run (not resent: see --resend-in-doubt)`,
      plan.repeated && `${count(plan.repeated)} repeated in the list (sent once)`,
      plan.blank && `${count(plan.blank)} blank ${plan.blank === 1 ? 'row' : 'rows'} skipped`,
    ].filter(Boolean);
    const toSend = plan.rows - plan.earlierSent - plan.earlierInDoubtRows - plan.repeated;
    out.write(
      state
        ? `batch ${batchId}: ${count(toSend)} to send${extra.length ? `, ${extra.join(', ')}` : ''} (state in ${state.path})\n`
        : `batch ${batchId}: ${count(plan.rows)} in the list${extra.length ? `, ${extra.join(', ')}` : ''} (ledger in Redis: what an earlier run sent is skipped)\n`,
    );
    const view = createProgressView({ total: toSend + plan.repeated, stream: out, ...(options.tty !== undefined && { tty: options.tty }) });
    const watch = watchBatch(mailer, view, state, err, options.verbose ?? false);
    inDoubtNow = watch.inDoubtNow;
    options.onQuit?.(() => quit(state, watch.onWire));

    const domain = /@([^@]+)$/.exec(from[0]!)?.[1] ?? 'mailpacer.invalid';
    /**
     * The body, as a content object whose text nodemailer reads when it composes an attempt, right
     * before the attempt goes to the server: that read is what tells which messages are on the
     * wire. (An empty body is left as it is: nodemailer leaves out the part.)
     */
    const body = (id: string, text: string) =>
      state && text !== ''
        ? {
            get content() {
              watch.onWire.add(id);
              return text;
            },
          }
        : text;
    try {
      report = await mailer.sendBatch(rowsToSend(list, state, options.resendInDoubt ?? false), {
        id: batchId,
        total: toSend + plan.repeated,
        progressInterval: view.intervalMs,
        resendInDoubt: options.resendInDoubt ?? false,
        ...(options.signal && { signal: options.signal }),
        build: (row): Message => {
          const to = recipientOf(row);
          const id = idOf(to);
          return {
            id,
            // The same Message-ID on every run of the batch, so a receiver can tell a resend.
            messageId: `<${hash(`${batchId}\0${id}`).slice(0, 32)}@${domain}>`,
            from: options.from,
            to,
            subject: render(subject, row.fields, row),
            [template.html ? 'html' : 'text']: body(id, render(template.body, row.fields, row, { html: template.html })),
            ...(options.provider !== undefined && { provider: options.provider }),
          };
        },
      });
    } catch (error) {
      // Stopped while the batch waited to start (Redis unreachable): nothing was sent.
      if (!options.signal?.aborted) throw error;
      if (options.verbose) err.write(`${errorText(error, true)}\n`);
    } finally {
      view.stop();
    }
    if (report) {
      // In doubt: the server may have the message. Like the Redis ledger, do not resend it blindly.
      for (const id of report.inDoubtIds) if (!inDoubtNow.has(id)) state?.record(id, 'in-doubt');
    }
  } finally {
    await mailer.close();
    state?.close();
  }
  if (!report) {
    out.write('\ninterrupted before anything was sent\n');
    return 130;
  }

  const inDoubt = report.inDoubt + plan.earlierInDoubtRows;
  const skipped = report.skipped + plan.earlierSent;
  const notYet = plan.rows - report.sent - report.failed - inDoubt - skipped;
  out.write(
    `\nsent ${count(report.sent)}, failed ${count(report.failed)}, skipped ${count(skipped)}, in doubt ${count(inDoubt)}${notYet ? `, not sent yet ${count(notYet)}` : ''}` +
      ` (${count(plan.rows)} in the list) in ${duration(report.durationMs)}\n`,
  );
  const inDoubtIds = [...new Set([...report.inDoubtIds, ...plan.earlierInDoubt])];
  if (inDoubtIds.length) {
    out.write(`in doubt (the server may have accepted them; not resent, --resend-in-doubt sends them again): ${inDoubtIds.slice(0, 5).join(', ')}${inDoubtIds.length > 5 ? ', ...' : ''}\n`);
  }
  // Written when asked for, when anything failed, and over an earlier run's (which would mislead).
  if (options.failures !== undefined || report.failed + inDoubtIds.length > 0 || existsSync(failuresPath)) {
    const rows = report.failures.map((f) => [f.id, f.to.join(' ') || f.id, f.decision, f.response ?? f.message]);
    for (const id of inDoubtIds) {
      rows.push([id, id, 'in-doubt', `${inDoubtNow.has(id) ? 'no reply after the message went out' : 'in doubt since an earlier run of the batch'}: ${IN_DOUBT_REASON}`]);
    }
    try {
      await writeFile(failuresPath, formatCsv(['id', 'email', 'decision', 'response'], rows));
      out.write(`failures written to ${failuresPath}\n`);
    } catch (error) {
      err.write(`mailpacer send: cannot write the failures to ${failuresPath}: ${fileProblem(error)}\n`);
    }
  }
  if (notYet > 0) {
    out.write(`stopped: run the same command${options.batchId ? '' : ` with --batch-id ${batchId}`} to send the rest\n`);
    return 130;
  }
  return report.failed + inDoubtIds.length > 0 ? 1 : 0;
}

/**
 * Shows the batch (progress, warnings, with `verbose` retries and failures) and records each
 * outcome in the state file as soon as it is known. Tracks the messages on the wire.
 */
function watchBatch(mailer: Mailer, view: ProgressView, state: StateFile | undefined, err: Output, verbose: boolean) {
  /** Messages on the wire (see `body` in runSend): recorded as in doubt if the command quits at once. */
  const onWire = new Set<string>();
  const inDoubtNow = new Set<string>();
  mailer.on('progress', view.update);
  mailer.on('sent', (e) => {
    if (e.messageId === undefined) return;
    onWire.delete(e.messageId);
    state?.record(e.messageId, 'sent');
  });
  mailer.on('failed', (e) => {
    if (e.messageId === undefined) return;
    onWire.delete(e.messageId);
    if (!e.error.inDoubt) return;
    inDoubtNow.add(e.messageId);
    state?.record(e.messageId, 'in-doubt');
  });
  // A failed attempt that will be retried is off the wire until its next attempt.
  mailer.on('retry', (e) => void (e.messageId !== undefined && onWire.delete(e.messageId)));
  // Redis unreachable: sends wait for it, and this says why nothing moves. Once per change, not per retry.
  const warned = new Map<string, string>();
  mailer.on('error', (e) => {
    if (warned.get(e.source) === e.error.message) return;
    warned.set(e.source, e.error.message);
    const line = `warning: ${e.source === 'redis' ? '' : `${e.source}: `}${e.error.message}`;
    if (view.live) view.log(line);
    else err.write(`${line}\n`);
  });
  if (verbose) {
    mailer.on('retry', (e) => view.log(`retry ${e.messageId}: ${e.decision} ${e.response ?? ''} (in ${duration(e.delayMs)})`));
    mailer.on('throttle', (e) => {
      // A stopped lane sends nothing more: its rate would read "Infinity/s".
      if (e.action === 'stop') return view.log(`${e.lane}: stopped after ${e.decision}${e.response ? `: ${e.response}` : ''}`);
      view.log(`${e.lane}: ${e.action} after ${e.decision}: now ${Number.isFinite(e.rate) ? `${e.rate.toFixed(1)}/s` : 'no rate limit'}, ${e.connections} connections`);
    });
    mailer.on('failed', (e) => view.log(`failed ${e.messageId}: ${e.error.message}`));
  }
  return { onWire, inDoubtNow };
}

/**
 * What a second Ctrl-C does before the process exits, synchronously: records the messages on the
 * wire as in doubt (their outcome will never be known), and says so.
 */
function quit(state: StateFile | undefined, onWire: ReadonlySet<string>): string {
  if (!state) {
    return (
      'quitting at once: the messages on the wire stay marked as being sent in the Redis ledger; a re-run within about a minute ' +
      'skips them (and the others this run held) as held by another run, after that it reports them as in doubt and sends the rest'
    );
  }
  for (const id of onWire) state.record(id, 'in-doubt');
  state.close();
  const n = onWire.size;
  if (n === 0) return 'quitting at once: no message was on the wire; a re-run sends the rest';
  const them = n === 1 ? 'it' : 'them';
  return `quitting at once: ${count(n)} ${n === 1 ? 'message was' : 'messages were'} on the wire, recorded as in doubt in ${state.path}: a re-run reports ${them} and sends ${them} again only with --resend-in-doubt (which may duplicate ${them})`;
}

/** What the first pass found in the list. */
interface Plan {
  /** Rows with a recipient (blank rows not counted). */
  rows: number;
  blank: number;
  /** Rows an earlier run sent (the state file says so). */
  earlierSent: number;
  /** Ids an earlier run left in doubt, and the rows that have them: not sent again unless asked. */
  earlierInDoubt: Set<string>;
  earlierInDoubtRows: number;
  /** Rows whose address an earlier row of the list has. */
  repeated: number;
  /** The signal stopped the pass. */
  stopped: boolean;
}

/** Checks every row (and counts them) before anything is sent: a bad row stops the command here. */
async function firstPass(list: string, given: string, subject: string, template: ReturnType<typeof parseTemplate>, state: StateFile | undefined, options: SendCommandOptions): Promise<Plan> {
  const plan: Plan = { rows: 0, blank: 0, earlierSent: 0, earlierInDoubt: new Set(), earlierInDoubtRows: 0, repeated: 0, stopped: false };
  const seen = new Set<string>();
  try {
    for await (const row of readCsvFile(list, { required: ['email'], onHeader: (header) => checkColumns([subject, template.body], header) })) {
      if (options.signal?.aborted) return { ...plan, stopped: true };
      if (isBlank(row)) {
        plan.blank++;
        continue;
      }
      const id = idOf(recipientOf(row));
      const rendered = render(subject, row.fields, row);
      if (rendered.trim() === '') throw new SendInputError(`row ${row.row} (line ${row.line}): the subject is empty for this row (the fields it uses are empty)`);
      render(template.body, row.fields, row, { html: template.html });
      plan.rows++;
      if (state?.sent.has(id)) plan.earlierSent++;
      else if (state?.inDoubt.has(id) && !options.resendInDoubt) {
        plan.earlierInDoubt.add(id);
        plan.earlierInDoubtRows++;
      } else if (seen.has(id)) plan.repeated++;
      else seen.add(id);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw error;
    throw new SendInputError(`cannot read list ${given}: ${code === 'ENOENT' ? 'no such file' : fileProblem(error)}`, { cause: error });
  }
  return plan;
}

/** The rows to give the batch: not blank, and not settled by an earlier run (the state file). */
async function* rowsToSend(list: string, state: StateFile | undefined, resendInDoubt: boolean): AsyncGenerator<CsvRow> {
  for await (const row of readCsvFile(list, { required: ['email'] })) {
    if (isBlank(row)) continue;
    const id = idOf(recipientOf(row));
    if (state?.sent.has(id) || (state?.inDoubt.has(id) && !resendInDoubt)) continue;
    yield row;
  }
}

const hash = (text: string): string => createHash('sha256').update(text).digest('hex');
