import { setMaxListeners } from 'node:events';
import type { SendMailOptions, SentMessageInfo } from 'nodemailer';
import { runBatch, type BatchOptions, type BatchReport, type BatchSource } from './batch/batch.js';
import { checkSendSignal, parseBatchOptions } from './batch/options.js';
import { createMemoryLedger, type Ledger } from './batch/ledger.js';
import { createRedisLedger } from './batch/redis-ledger.js';
import { parseOptions } from './config/parse.js';
import type { MailerOptionsInput } from './config/schema.js';
import { createEmitter, type MailerEmitter } from './emitter.js';
import { AbortedError, DeliveryError } from './errors.js';
import type { Attempt, BeforeSend, Lane, LaneStats } from './lanes/lane.js';
import { createLanes } from './lanes/lanes.js';
import { connectRedis } from './limiter/connect.js';
import { createFailoverLimiter, createRedisHealth } from './limiter/failover.js';
import type { Limiter } from './limiter/limiter.js';
import { createMemoryLimiter } from './limiter/memory.js';
import { createRedisLimiter } from './limiter/redis.js';
import { addresses, prepareMessage, type Message, type PreparedMessage } from './message.js';
import { classifySmtpError, isTooManyRecipients } from './smtp/classify.js';
import type { Decision } from './smtp/decision.js';
import { isRetryable, retryDelay } from './retry/backoff.js';
import { Deadline, withRetry, RetryStopped } from './retry/retry.js';
import { AttemptFailure } from './retry/attempt-failure.js';
import { sleep } from './retry/sleep.js';

/** What `send()` resolves with: nodemailer's info, plus how it went. */
export type SendResult = SentMessageInfo & {
  /** Attempts it took, from 1. */
  attempts: number;
  /** The provider that delivered it. */
  provider: string;
  /** The message's `id`, when it had one. */
  id: string | undefined;
};

export interface SendOptions {
  /** Stops waiting and retrying. An attempt already talking to the server finishes first. */
  signal?: AbortSignal;
}

export interface Mailer extends MailerEmitter {
  /** Sends one message, paced and retried. Resolves when the server accepted it; rejects with `DeliveryError`. */
  send(message: Message, options?: SendOptions): Promise<SendResult>;
  /** Sends a batch from an array, iterable or async iterable, with backpressure; resumable with an `id`. */
  sendBatch<T>(source: BatchSource<T>, options?: BatchOptions<T>): Promise<BatchReport>;
  /** Per lane: configured and effective limits, connections, counts and state. */
  stats(): Promise<LaneStats[]>;
  /** Stops taking messages, fails those still waiting, and closes connections and Redis clients mailpacer opened. */
  close(): Promise<void>;
}

interface DeliverOptions {
  /** Ends every wait of the message: the caller's signal combined with the mailer closing. */
  signal: AbortSignal;
  beforeSend?: BeforeSend | undefined;
  resendInDoubt?: boolean;
}

/** Creates a mailer. Bad options throw a `ConfigError` here, naming each one. */
export function createMailer(options: MailerOptionsInput): Mailer {
  const config = parseOptions(options);
  const emitter = createEmitter(config.hooks);
  const redis = config.redis === undefined ? undefined : connectRedis(config.redis);
  const { keyPrefix } = config;
  const health = createRedisHealth((up, error) =>
    emitter.emit('error', {
      source: 'redis',
      error: new Error(up ? 'Redis is back: limits are shared again' : `Redis is unreachable (${error?.message}); ${config.onRedisDown === 'wait' ? 'sends wait for it' : "sends use this process's share of the limits"}`),
    }),
  );
  const limiter: Limiter = redis
    ? createFailoverLimiter({ primary: createRedisLimiter({ client: redis.client, keyPrefix, quotaCounts: config.onRedisDown === 'local' }), client: redis.client, keyPrefix, mode: config.onRedisDown, health })
    : createMemoryLimiter();
  const ledger: Ledger = redis ? createRedisLedger({ client: redis.client, keyPrefix, ttlMs: config.ledgerTtl, health }) : createMemoryLedger({ ttlMs: config.ledgerTtl });
  const lanes = createLanes(config, limiter, emitter);
  const { providers } = lanes;
  let closed = false;
  const closing = new AbortController();
  // Every waiting message listens to it: no listener limit (the warning would be a false alarm).
  setMaxListeners(0, closing.signal);
  /** The caller's signal, or the mailer closing, whichever comes first: close() ends every wait. */
  const withClosing = (signal: AbortSignal | undefined) => {
    if (!signal) return closing.signal;
    const combined = AbortSignal.any([signal, closing.signal]);
    setMaxListeners(0, combined);
    return combined;
  };

  /**
   * One message, calling `resolve` with its result or `reject` with why it failed, once. Most
   * messages go in one transaction that succeeds at the first attempt: that attempt (a
   * `FirstAttempt`) goes to the lane from here and its outcome comes back to its methods, from the
   * lane's transport straight to `resolve`, with no promise per message. Anything else (a lane
   * still to be picked by MX, more recipients than one transaction takes, a failed attempt,
   * recipients refused for now) goes on in `deliver`, from where this left it.
   */
  function deliverNow(prepared: PreparedMessage, options: DeliverOptions, resolve: (result: SendResult) => void, reject: (error: unknown) => void): void {
    const picked = lanes.pick(prepared.provider ?? providers[0]!, prepared.recipients);
    if (picked instanceof Promise || !picked || closed || options.signal.aborted || prepared.recipients.length > recipientLimit(picked)) {
      void deliver(prepared, options, picked).then(resolve, reject);
      return;
    }
    picked.submit(new FirstAttempt(prepared, options, picked, resolve, reject));
  }

  /** The first attempt of a message that goes in one transaction: its state, and where its outcome goes (see `deliverNow`). */
  class FirstAttempt implements Attempt {
    readonly mail: SendMailOptions;
    readonly signal: AbortSignal;
    readonly beforeSend: BeforeSend | undefined;
    readonly started = Date.now();
    readonly deadline: number;
    /** The message's retry deadline: `deadline`, moved later by the quota pauses the attempt waited through. */
    #clock: number;

    constructor(
      readonly prepared: PreparedMessage,
      readonly options: DeliverOptions,
      readonly lane: Lane,
      readonly onSent: (result: SendResult) => void,
      readonly onFailed: (error: unknown) => void,
    ) {
      this.mail = prepared.mail;
      this.signal = options.signal;
      this.beforeSend = options.beforeSend;
      this.deadline = this.#clock = this.started + config.retry.maxRetryTime;
    }

    paused(ms: number): void {
      if (ms > 0) this.#clock += ms;
    }

    resolve(info: SentMessageInfo): void {
      if (refusedForNow(info, config.retry)) return this.#goOn({ value: info });
      let result: SendResult;
      try {
        result = finish(this.lane, this.prepared.id, this.prepared.recipients, 1, [info], this.started);
      } catch (error) {
        return this.onFailed(error);
      }
      this.onSent(result);
    }

    reject(error: AttemptFailure | AbortedError): void {
      this.#goOn({ error });
    }

    /** The rest of the message's delivery, from this attempt's outcome on. */
    #goOn(outcome: First['outcome']): void {
      void deliver(this.prepared, this.options, this.lane, { clock: new Deadline(this.#clock), started: this.started, outcome }).then(this.onSent, this.onFailed);
    }
  }

  // One message: route → lane (limiter → transport → classify) → retry → events. `first`: the
  // first attempt of the first transaction, made by `deliverNow`, and the time it was made at.
  async function deliver(prepared: PreparedMessage, { signal, beforeSend, resendInDoubt = config.retry.resendInDoubt }: DeliverOptions, picked = lanes.pick(prepared.provider ?? providers[0]!, prepared.recipients), first?: First): Promise<SendResult> {
    const { id, recipients } = prepared;
    const lane = picked instanceof Promise ? await picked : picked;
    if (!lane) throw refused(String(prepared.provider), id, recipients, `unknown provider ${JSON.stringify(prepared.provider)} (configured: ${providers.join(', ')})`);
    if (!first && closed) throw new AbortedError('mailer is closed', { closed: true });
    const started = first?.started ?? Date.now();
    // The envelope goes in parts when the provider takes fewer recipients per message, or when the
    // server says so (452 4.5.3): each part is one SMTP transaction, paced and retried on its own.
    // Recipients the server refused for now while it took the others go again in a part of their own.
    const limit = recipientLimit(lane);
    const parts: Part[] = recipients.length > limit ? chunk(recipients, limit).map((to) => ({ to })) : [{ to: recipients }];
    const results: SentMessageInfo[] = [];
    let attempts = 0;
    /** One `maxRetryTime` for the whole message, from its first attempt: its parts share it. */
    let clock: Deadline | undefined = first?.clock;
    /** The outcome of the first part's first attempt, when `deliverNow` made it. */
    let outcome = first?.outcome;
    /** An attempt ended in doubt and was retried (`resendInDoubt`): the message may have arrived already. */
    let doubted = false;
    while (parts.length > 0) {
      const { to: part, later } = parts.shift()!;
      const mail = part === recipients ? prepared.mail : { ...prepared.mail, envelope: { from: envelopeFrom(prepared.mail), to: [...part] } };
      try {
        clock ??= new Deadline(Date.now() + config.retry.maxRetryTime);
        if (later) {
          // Recipients refused for now that could only go again after the message's retry time.
          if (!clock.allows(later.decision, later.delayMs, Date.now())) {
            throw new RetryStopped(new AttemptFailure(later.decision, { lane: lane.name, responseCode: later.responseCode, response: later.response }), 0, 'deadline');
          }
          deferred(lane, id, attempts, config.retry.retries, later.delayMs, later, part);
          await sleep(later.delayMs, signal);
        }
        const made = outcome;
        outcome = undefined;
        const result =
          made && 'value' in made
            ? { value: made.value, attempts: 1 }
            : await withRetry(({ deadline, paused }) => lane.attempt(mail, { signal, deadline, beforeSend, onPaused: paused }), {
                retry: config.retry,
                signal,
                resendInDoubt,
                deadline: clock,
                canSplit: part.length > 1,
                firstFailed: made,
                onRetry: ({ attempt, retriesLeft, delayMs, failure }) => {
                  doubted ||= failure.inDoubt;
                  deferred(lane, id, attempts + attempt, retriesLeft, delayMs, failure, part);
                },
              });
        attempts += result.attempts;
        results.push(result.value);
        // Recipients refused for being too many in this transaction go again, in halves; those
        // refused for now for another reason (greylisted, mailbox busy), together, after the delay
        // their reply calls for.
        const refused = refusedForNow(result.value, config.retry);
        if (refused) {
          parts.push(...halves(refused.tooMany).map((to) => ({ to })));
          if (refused.later) parts.push(refused.later);
        }
      } catch (error) {
        // A stop on the server's word (refused, in doubt) is the message's outcome even when the
        // mailer closed or the signal aborted meanwhile; anything else then is the abort.
        if (!(error instanceof RetryStopped)) {
          if (!closed && !signal.aborted) throw error;
          // Some parts went already, or an attempt that may have arrived was being retried: sending
          // the message again could send it twice, so it is in doubt (not resent unless asked), as
          // one whose connection was lost after its body.
          if (results.length > 0 || doubted) {
            const accepted = acceptedIn(results);
            const stopped = closed ? 'mailer closed' : 'send aborted';
            const why = results.length > 0 ? `${stopped} after ${accepted.length} of ${recipients.length} recipients accepted` : `${stopped} while retrying an attempt that may have arrived`;
            throw failed(lane.name, id, recipients, new DeliveryError(`Delivery ${about(id)}stopped: ${why} (in doubt: not resent)`, { decision: 'transient', attempts, provider: lane.provider, messageId: id, inDoubt: true, accepted, cause: signal.reason }));
          }
          if (closed) throw new AbortedError('mailer closed before the message was sent', { closed: true });
          throw new AbortedError('send aborted', { cause: signal.reason });
        }
        attempts += error.attempts;
        if (error.reason === 'split') {
          parts.unshift(...halves(part).map((to) => ({ to })));
          continue;
        }
        lane.countFailed();
        const { failure, reason } = error;
        const why = { 'not-retryable': '', deadline: ' (out of retry time)', 'retries-exhausted': ' (out of retries)', 'in-doubt': ' (in doubt: the server may have accepted it; not resent)', split: '' }[reason];
        const accepted = acceptedIn(results);
        const partly = results.length > 0 ? ` (after ${accepted.length} of ${recipients.length} recipients accepted)` : '';
        const delivery = new DeliveryError(`Delivery ${about(id)}failed: ${failure.response ?? failure.message}${why}${partly}`, {
          decision: failure.decision.kind,
          attempts,
          provider: lane.provider,
          messageId: id,
          responseCode: failure.responseCode,
          response: failure.response,
          inDoubt: failure.inDoubt,
          accepted,
        });
        throw failed(lane.name, id, recipients, delivery);
      }
    }
    return finish(lane, id, recipients, attempts, results, started);
  }

  /** How many recipients one transaction of the lane's provider takes. */
  function recipientLimit(lane: Lane): number {
    return config.providers[lane.provider]!.maxRecipientsPerMessage ?? Infinity;
  }

  /** A delivered message: its `sent` event, and nodemailer's info (merged over its transactions) with how it went. */
  function finish(lane: Lane, id: string | undefined, recipients: readonly string[], attempts: number, results: SentMessageInfo[], started: number): SendResult {
    const value = merge(results);
    if (emitter.wants('sent')) {
      const rejected = ((value as { rejected?: unknown[] }).rejected ?? []).map(String);
      emitter.emit('sent', { provider: lane.provider, lane: lane.name, messageId: id, recipients, attempts, response: (value as { response?: string }).response, rejected, durationMs: Date.now() - started });
    }
    const result = value as SendResult;
    result.attempts = attempts;
    result.provider = lane.provider;
    result.id = id;
    return result;
  }

  /** A retry of `to` is scheduled: counted for `stats()` and told through the `retry` event. */
  function deferred(lane: Lane, id: string | undefined, attempt: number, retriesLeft: number, delayMs: number, reply: Reply, to: readonly string[]): void {
    lane.countDeferred();
    emitter.emit('retry', { attempt, retriesLeft, delayMs, decision: reply.decision.kind, responseCode: reply.responseCode, response: reply.response, provider: lane.provider, lane: lane.name, messageId: id, recipients: to });
  }

  function failed(lane: string, id: string | undefined, recipients: readonly string[], error: DeliveryError): DeliveryError {
    emitter.emit('failed', { provider: error.provider, lane, messageId: id, recipients, error });
    return error;
  }

  /** The provider a message named, as a string (it may be unknown or malformed: it is refused then), or the first. */
  const providerOf = (message: Message | undefined): string => (typeof message?.provider === 'string' ? message.provider : providers[0]!);

  /** A message refused before any attempt (no recipients, a bad address, an unknown provider, a build that threw). */
  function refused(provider: string, id: string | undefined, recipients: readonly string[], problem: string, cause?: unknown): DeliveryError {
    return failed(provider, id, recipients, new DeliveryError(`Delivery ${about(id)}failed: ${problem}`, { decision: 'permanent', attempts: 0, provider, messageId: id, cause }));
  }

  return {
    send(message, sendOptions = {}) {
      return new Promise((resolve, reject) => {
        if (closed) throw new AbortedError('mailer is closed', { closed: true });
        checkSendSignal(sendOptions?.signal);
        const prepared = prepareMessage(message);
        if ('problem' in prepared) {
          throw refused(providerOf(message), typeof message?.id === 'string' ? message.id : undefined, prepared.recipients, prepared.problem);
        }
        deliverNow(prepared, { signal: withClosing(sendOptions?.signal) }, resolve, reject);
      });
    },

    async sendBatch(source, batchOptions = {}) {
      if (closed) throw new AbortedError('mailer is closed', { closed: true });
      // Every option is checked before the ledger's run opens (its heartbeat would outlive a throw).
      const { progressIntervalMs, waveIntervalMs } = parseBatchOptions(batchOptions);
      const resendInDoubt = batchOptions.resendInDoubt ?? config.retry.resendInDoubt;
      // close() stops the batch too: nothing new starts, waiting messages are given back.
      const signal = withClosing(batchOptions.signal);
      return runBatch(source, { ...batchOptions, signal }, {
        deliver: deliverNow,
        ledger: batchOptions.id === undefined ? undefined : await ledger.open(batchOptions.id, { resendInDoubt, signal }),
        resendInDoubt,
        emitProgress: (event) => emitter.emit('progress', event),
        emitFailed: (id, message, recipients, problem, cause) => void refused(providerOf(message), id, recipients, problem, cause),
        progressIntervalMs,
        waveIntervalMs,
      });
    },

    on: emitter.on,
    off: emitter.off,
    once: emitter.once,
    stats: () => Promise.all([...lanes.all.values()].map((lane) => lane.stats())),

    async close() {
      if (closed) return;
      closed = true;
      closing.abort(new AbortedError('mailer closed', { closed: true }));
      await lanes.close();
      await Promise.all([limiter.close(), ledger.close()]);
      await redis?.close();
    },
  };
}

const about = (id: string | undefined) => (id ? `of ${id} ` : '');

/** How far a message sent in parts got: `3 of 10 recipients accepted`. */
/** The recipients the parts sent so far reached. */
const acceptedIn = (results: SentMessageInfo[]): string[] => results.flatMap((r) => (r.accepted ?? []).map(String));

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const halves = <T>(items: readonly T[]): T[][] => (items.length > 1 ? chunk(items, Math.ceil(items.length / 2)) : items.length === 1 ? [[...items]] : []);

/** The first attempt of a message's first transaction, made by `deliverNow`: when, with which deadline, and how it went. */
interface First {
  clock: Deadline;
  started: number;
  outcome: { value: SentMessageInfo } | { error: unknown };
}

/** What a server answered, as far as the `retry` event tells it. */
interface Reply {
  decision: Decision;
  responseCode?: number | undefined;
  response?: string | undefined;
}

/** Recipients of one SMTP transaction; `later` when they go again after the server refused them for now. */
interface Part {
  to: readonly string[];
  later?: Reply & { delayMs: number };
}

/**
 * Recipients a server refused at `RCPT TO` while it took the message for the others, and that may
 * be taken later: "452 too many recipients" (`tooMany`), and any other temporary refusal
 * (greylisting, a mailbox busy or over its rate: `later`, with the longest delay their replies call
 * for). A permanent refusal (550 user unknown) stays in `rejected`. `undefined` when the server
 * refused no recipient (the usual case: nothing is allocated then).
 */
function refusedForNow(info: SentMessageInfo, retry: Parameters<typeof retryDelay>[2]): { tooMany: string[]; later: Part | undefined } | undefined {
  const errors = (info as { rejectedErrors?: Array<{ recipient?: string; responseCode?: number; response?: string } & Record<string, unknown>> }).rejectedErrors;
  if (!errors || errors.length === 0) return undefined;
  const tooMany: string[] = [];
  const to: string[] = [];
  let later: Part['later'];
  for (const error of errors) {
    if (!error.recipient) continue;
    if (isTooManyRecipients(error)) {
      tooMany.push(error.recipient);
      continue;
    }
    const decision = classifySmtpError(error);
    if (!isRetryable(decision)) continue;
    to.push(error.recipient);
    const delayMs = retryDelay(decision, 0, retry);
    if (!later || delayMs > later.delayMs) later = { delayMs, decision, responseCode: error.responseCode, response: error.response };
  }
  return { tooMany, later: later && { to, later } };
}

/** One result for a message sent in parts: every accepted and rejected recipient, the last reply. */
function merge(results: SentMessageInfo[]): SentMessageInfo {
  if (results.length === 1) return results[0]!;
  const accepted: unknown[] = results.flatMap((r) => r.accepted ?? []);
  // A recipient refused as one too many and accepted in a later part was not rejected.
  const delivered = new Set(accepted.map(String));
  const rejected = results.flatMap((r) => (r.rejected ?? []) as unknown[]).filter((address) => !delivered.has(String(address)));
  return { ...results.at(-1)!, accepted: accepted as string[], rejected: rejected as string[], envelope: { ...results.at(-1)!.envelope, to: results.flatMap((r) => r.envelope?.to ?? []) } };
}

/** The envelope sender of a message: its `envelope.from`, or the address of `from`. */
function envelopeFrom(mail: SendMailOptions): string | undefined {
  const envelope = mail.envelope as { from?: unknown } | undefined;
  if (typeof envelope?.from === 'string') return envelope.from;
  return addresses(mail.from)[0];
}
