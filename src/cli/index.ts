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
  mailpacer check -c FILE [-n N]
      Validates the config, verifies each provider's SMTP login, shows its limits and how long
      a batch of N messages (default 10,000) takes under them.
  mailpacer send -c FILE --to LIST.csv -t FILE -f ADDR [-s S] [--batch-id ID]
                 [--failures OUT.csv] [-p NAME] [--resend-in-doubt]
      One message per row of LIST.csv (an "email" column holding one address per row; the others
      fill {{field}} in the template, whose first line may be "Subject: ..."). Every row is checked
      before anything is sent. A re-run with the same batch id sends nothing twice: without Redis
      in the config, outcomes are kept in .mailpacer-<batch-id>.sent next to the list. Failures
      and messages in doubt go to OUT.csv (default failures-<batch-id>.csv next to the list).

options:
  -c, --config FILE     the createMailer options: .js, .mjs, .cjs, .json, or .ts (with tsx
                        installed); the default export (or \`config\` export) is the options, a
                        promise of them, or a function (async or not) returning them
  -n, --count N         check: the batch size to estimate (default 10,000)
      --recipients N    demo: how many recipients (default 2,000)
      --to LIST.csv     send: the list
  -t, --template FILE   send: the template; .html/.htm is sent as HTML (values escaped)
  -f, --from ADDR       send: the sender, one address: news@example.org or "News <news@example.org>"
  -s, --subject S       send: the subject (a template too), over the template's Subject: line
      --batch-id ID     send: names the batch, so that a re-run resumes it
                        (default: from the list's path, the template and the subject)
      --failures FILE   send: where to write the failures CSV (then written even when empty)
  -p, --provider NAME   send: the provider to send through (default the config's first)
      --resend-in-doubt
                        send: send again the messages in doubt (the connection was lost after
                        they went out): the server may have them already, so they may duplicate
      --verbose         full error details (and retries while sending)
  -h, --help            this text

Ctrl-C (or SIGTERM) stops cleanly: sends on the wire finish and are recorded; a second one quits
at once, and records the messages still on the wire as in doubt.
exit status: 0 ok; 1 a check failed (an invalid config, for check), or a message failed or is
in doubt; 2 bad usage or input (a missing or unreadable file; for send, an invalid config, list
row, template or address): nothing was sent; 130 interrupted (run the same command again).`;

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
    'resend-in-doubt': { type: 'boolean' },
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
        err,
        signal: stop.signal,
        onQuit: stop.onQuit,
        resendInDoubt: values['resend-in-doubt'] === true,
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
      // Validating the config is one of check's checks; for send, a bad config is bad input.
      return command === 'check' ? 1 : 2;
    }
    err.write(`mailpacer ${command}: ${errorText(error, verbose)}${verbose || !isUnexpected(error) ? '' : ' (--verbose for details)'}\n`);
    return isInputError(error) ? 2 : 1;
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

/** Problems with what the command was given (files, list, template, addresses), found before anything was sent: exit status 2. */
const INPUT_ERRORS = ['ConfigFileError', 'CsvError', 'TemplateError', 'ListError', 'SendInputError'];
const isInputError = (error: unknown): boolean => error instanceof Error && INPUT_ERRORS.includes(error.name);

/** Errors the commands throw on purpose carry a sentence; anything else is worth a stack trace. */
const isUnexpected = (error: unknown): boolean => !isInputError(error) && !(error instanceof Error && error.name === 'DeliveryError');

/**
 * First Ctrl-C or SIGTERM (`kill`, `docker stop`): stop the batch cleanly (sends on the wire finish
 * and are recorded). Second: quit now, after the command's quit handler (`onQuit`) recorded what it
 * can, synchronously, and said what it could not.
 */
function interruptible(err: NodeJS.WritableStream) {
  const controller = new AbortController();
  let onQuit: (() => string) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      let line = 'quitting at once: nothing was sent';
      try {
        if (onQuit) line = onQuit();
      } catch (error) {
        line = `quitting at once; recording the messages on the wire failed (${(error as Error).message}): a re-run may send them again`;
      }
      err.write(`\n${line}\n`);
      process.exit(130);
    }
    const again = signal === 'SIGINT' ? 'Ctrl-C' : signal;
    err.write(`\n${signal === 'SIGINT' ? '' : `${signal}: `}stopping: letting sends on the wire finish (${again} again to quit at once)\n`);
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    onQuit: (handler: () => string) => void (onQuit = handler),
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
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
