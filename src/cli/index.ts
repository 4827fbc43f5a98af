#!/usr/bin/env node
// The `mailpacer` command: demo, check, send.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isConfigError, type ConfigError } from '../index.js';
import { runCheck } from './check.js';
import { suggestKey } from './config-keys.js';
import { runDemo } from './demo.js';
import { errorText } from './format.js';
import { runSend } from './send.js';

const HELP = `mailpacer: bulk email through nodemailer, paced under your providers' limits

usage:
  mailpacer demo [--recipients N]
      A newsletter to a local SMTP server that throttles like a real one; shows the adaptation.
  mailpacer check --config FILE [--count N]
      Validates the config, verifies each provider's SMTP login, shows its limits and how long
      a batch of N messages (default 10,000) takes under them.
  mailpacer send --config FILE --to LIST.csv --template FILE --from ADDR
                 [--subject S] [--batch-id ID] [--failures OUT.csv] [--provider NAME]
      One message per row of LIST.csv (an "email" column; the others fill {{field}} in the
      template, whose first line may be "Subject: ..."). A re-run with the same batch id sends
      nothing twice: without Redis in the config, sent ids are kept in .mailpacer-<batch-id>.sent
      next to the list. Failures go to OUT.csv (default failures-<batch-id>.csv next to the list).

  --verbose   full error details (and retries while sending)
  --help      this text

config FILE: .js, .mjs, .cjs, .json, or .ts (with tsx installed); its default export (or
\`config\` export) is the createMailer options.
exit status: 0 ok, 1 a check or a message failed, 2 bad usage, 130 interrupted.`;

const COMMON = { verbose: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const satisfies ParseArgsConfig['options'];
const FLAGS = {
  demo: { ...COMMON, recipients: { type: 'string' } },
  check: { ...COMMON, config: { type: 'string', short: 'c' }, count: { type: 'string', short: 'n' } },
  send: {
    ...COMMON,
    config: { type: 'string', short: 'c' },
    to: { type: 'string' },
    template: { type: 'string', short: 't' },
    subject: { type: 'string', short: 's' },
    from: { type: 'string', short: 'f' },
    'batch-id': { type: 'string' },
    failures: { type: 'string' },
    provider: { type: 'string', short: 'p' },
  },
} as const satisfies Record<string, ParseArgsConfig['options']>;

class UsageError extends Error {}

/** Runs the command line; resolves with the exit status. */
export async function main(argv: readonly string[], err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [command, ...rest] = argv;
  const verbose = rest.includes('--verbose');
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(`${HELP}\n`);
      return command === undefined ? 2 : 0;
    }
    if (!Object.hasOwn(FLAGS, command)) throw new UsageError(`unknown command "${command}" (commands: demo, check, send; see mailpacer --help)`);
    const name = command as keyof typeof FLAGS;
    const values = parse(name, rest);
    const str = (key: string): string | undefined => (typeof values[key] === 'string' ? values[key] : undefined);
    if (values.help) {
      process.stdout.write(`${HELP}\n`);
      return 0;
    }
    if (name === 'demo') {
      const recipients = str('recipients');
      return (await runDemo(recipients === undefined ? {} : { recipients: positive('--recipients', recipients) })).exitCode;
    }
    if (name === 'check') {
      const n = str('count');
      return await runCheck({ config: required('--config', str('config')), verbose, ...(n !== undefined && { count: positive('--count', n) }) });
    }
    const stop = interruptible(err);
    try {
      const [subject, batchId, failures, provider] = [str('subject'), str('batch-id'), str('failures'), str('provider')];
      return await runSend({
        config: required('--config', str('config')),
        to: required('--to', str('to')),
        template: required('--template', str('template')),
        from: required('--from', str('from')),
        verbose,
        signal: stop.signal,
        ...(subject !== undefined && { subject }),
        ...(batchId !== undefined && { batchId }),
        ...(failures !== undefined && { failures }),
        ...(provider !== undefined && { provider }),
      });
    } finally {
      stop.dispose();
    }
  } catch (error) {
    if (error instanceof UsageError) {
      err.write(`mailpacer: ${error.message}\n`);
      return 2;
    }
    if (isConfigError(error)) {
      err.write(configErrorLines(error).join('\n') + '\n');
      if (verbose) err.write(`${errorText(error, true)}\n`);
      return 1;
    }
    err.write(`mailpacer ${command}: ${errorText(error, verbose)}${verbose || !isUnexpected(error) ? '' : ' (--verbose for details)'}\n`);
    return 1;
  }
}

function parse(name: keyof typeof FLAGS, args: string[]): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options: FLAGS[name], strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    const text = (error as Error).message;
    const unknown = /Unknown option '([^']+)'/.exec(text)?.[1];
    const positional = /Unexpected argument '([^']+)'/.exec(text)?.[1];
    if (unknown) throw new UsageError(`${name}: unknown option ${unknown} (see mailpacer --help)`);
    if (positional) throw new UsageError(`${name}: unexpected argument "${positional}" (see mailpacer --help)`);
    throw new UsageError(`${name}: ${text.split('\n')[0]}`);
  }
}

/** One line per bad option: `config error: providers.ses.rate[0].per: expected a duration like "1s"...`. */
function configErrorLines(error: ConfigError): string[] {
  return error.issues.map((issue) => {
    const hint = issue.message.startsWith('unknown option') ? suggestKey(issue.path) : undefined;
    return `config error: ${issue.path ? `${issue.path}: ` : ''}${issue.message}${hint ? ` (did you mean ${hint}?)` : ''}`;
  });
}

function required(flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required (see mailpacer --help)`);
  return value;
}

function positive(flag: string, value: string): number {
  const n = Number(value.replace(/[_,]/g, ''));
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag}: expected a whole number greater than 0, got "${value}"`);
  return n;
}

/** Errors the commands throw on purpose carry a sentence; anything else is worth a stack trace. */
const isUnexpected = (error: unknown): boolean =>
  !(error instanceof Error) || !['ConfigFileError', 'CsvError', 'TemplateError', 'SendInputError', 'DeliveryError'].includes(error.name);

/** First Ctrl-C: stop the batch cleanly (sends on the wire finish). Second: quit now. */
function interruptible(err: NodeJS.WritableStream) {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    err.write('\nstopping: letting sends on the wire finish (Ctrl-C again to quit at once)\n');
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}

// Output piped into `head` that closed early: the command still finishes, with its exit status.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
});

// No top-level await: the bundle is built as CommonJS too.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Anything left open (a socket that did not close) must not keep a finished command alive.
  setTimeout(() => process.exit(code), 1_000).unref();
});
