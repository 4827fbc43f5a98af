import type { SentMessageInfo } from 'nodemailer';
import { parseOptions } from './config/parse.js';
import type { MailerConfig, MailerOptionsInput } from './config/schema.js';
import { createEmitter, type MailerEmitter } from './emitter.js';
import { AbortedError, DeliveryError } from './errors.js';
import { DEFAULT_CONTROLLER } from './lanes/controller.js';
import { Lane, type LaneStats } from './lanes/lane.js';
import { createTransportFactory, type TransportInput } from './lanes/transport.js';
import type { Limiter, RateWindowSpec } from './limiter/limiter.js';
import { createMemoryLimiter } from './limiter/memory.js';
import { prepareMessage, type Message } from './message.js';
import { collectSecrets, createRedactor, type Redactor } from './redact.js';
import { withRetry, RetryStopped } from './retry/retry.js';
import type { DecisionKind } from './smtp/decision.js';

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
  /** Per lane: configured and effective limits, connections, counts and state. */
  stats(): Promise<LaneStats[]>;
  /** Stops taking messages, fails those still waiting, and closes connections and Redis clients mailpacer opened. */
  close(): Promise<void>;
}

/** Creates a mailer. Bad options throw a `ConfigError` here, naming each one. */
export function createMailer(options: MailerOptionsInput): Mailer {
  const config = parseOptions(options);
  const emitter = createEmitter(config.hooks);
  const limiter: Limiter = createMemoryLimiter();
  const lanes = createLanes(config, limiter, emitter, createRedactor(Object.values(config.providers).flatMap((p) => collectSecrets(p.transport))));
  const providerNames = Object.keys(config.providers);
  let closed = false;

  async function send(message: Message, sendOptions: SendOptions = {}): Promise<SendResult> {
    const prepared = prepareMessage(message);
    const providerName = ('provider' in prepared ? prepared.provider : undefined) ?? providerNames[0]!;
    const id = 'id' in prepared ? prepared.id : undefined;
    if ('problem' in prepared) throw fail(providerName, id, [], 'permanent', prepared.problem, 0);
    const lane = lanes.get(providerName);
    if (!lane) throw fail(providerName, id, prepared.recipients, 'permanent', `unknown provider ${JSON.stringify(providerName)} (configured: ${providerNames.join(', ')})`, 0);
    if (closed) throw new AbortedError('mailer is closed');

    const started = Date.now();
    const signal = sendOptions.signal;
    try {
      const { value, attempts } = await withRetry(
        ({ deadline }) => lane.attempt(prepared.mail, anySignal(signal, deadline - Date.now())),
        {
          retry: config.retry,
          signal,
          onRetry: ({ attempt, retriesLeft, delayMs, failure }) => {
            lane.countDeferred();
            emitter.emit('retry', {
              attempt,
              retriesLeft,
              delayMs,
              decision: failure.decision.kind,
              responseCode: failure.responseCode,
              response: failure.response,
              provider: lane.provider,
              lane: lane.name,
              messageId: id,
              recipients: prepared.recipients,
            });
          },
        },
      );
      emitter.emit('sent', {
        provider: lane.provider,
        lane: lane.name,
        messageId: id,
        recipients: prepared.recipients,
        attempts,
        response: (value as { response?: string }).response,
        rejected: ((value as { rejected?: unknown[] }).rejected ?? []).map(String),
        durationMs: Date.now() - started,
      });
      return Object.assign(value, { attempts, provider: lane.provider, id });
    } catch (error) {
      if (!(error instanceof RetryStopped)) {
        if (signal?.aborted) throw new AbortedError('send aborted', { cause: signal.reason });
        throw error;
      }
      const { failure, attempts, reason } = error;
      const why = reason === 'not-retryable' ? '' : reason === 'deadline' ? ' (out of retry time)' : ' (out of retries)';
      lane.countFailed();
      throw fail(lane.provider, id, prepared.recipients, failure.decision.kind, `${failure.response ?? failure.message}${why}`, attempts, failure.responseCode, failure.response);
    }
  }

  function fail(provider: string, id: string | undefined, recipients: string[], decision: DecisionKind, text: string, attempts: number, responseCode?: number, response?: string): DeliveryError {
    const error = new DeliveryError(`Delivery ${id ? `of ${id} ` : ''}failed: ${text}`, { decision, attempts, provider, messageId: id, responseCode, response });
    emitter.emit('failed', { provider, lane: provider, messageId: id, recipients, error });
    return error;
  }

  return {
    send,
    on: emitter.on,
    off: emitter.off,
    once: emitter.once,
    stats: () => Promise.all([...lanes.values()].map((lane) => lane.stats())),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...lanes.values()].map((lane) => lane.close()));
      await limiter.close();
    },
  };
}

function createLanes(config: MailerConfig, limiter: Limiter, emitter: ReturnType<typeof createEmitter>, redact: Redactor): Map<string, Lane> {
  const lanes = new Map<string, Lane>();
  for (const [name, provider] of Object.entries(config.providers)) {
    const windows: RateWindowSpec[] = provider.rate === undefined ? [] : Array.isArray(provider.rate) ? provider.rate : [provider.rate];
    const spec = { windows, maxConnections: provider.maxConnections };
    const tightest = windows.length ? Math.min(...windows.map((w) => (w.max / w.perMs) * 1000)) : Infinity;
    const lane = new Lane({
      name,
      provider: name,
      spec,
      limiter: limiter.lane(name, spec),
      transport: createTransportFactory(provider.transport as TransportInput, provider.maxMessagesPerConnection),
      controller: {
        ...DEFAULT_CONTROLLER,
        maxConnections: provider.maxConnections,
        baseRatePerSecond: tightest,
        decrease: config.adaptive.decrease,
        increase: config.adaptive.increase,
        minRateFactor: config.adaptive.minRate,
        cooldownMs: config.adaptive.cooldown,
      },
      quotaPauseMs: Math.max(config.retry.maxDelay, ...windows.map((w) => w.perMs)),
      redact,
      onThrottle: (event) => emitter.emit('throttle', event),
      onLimiterError: (error) => emitter.emit('error', { error: new Error(redact(error.message)), source: 'limiter' }),
    });
    lanes.set(name, lane);
  }
  return lanes;
}

/** The caller's signal, or the deadline, whichever comes first. */
function anySignal(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(Math.max(1, ms));
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}
