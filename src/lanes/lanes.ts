import { builtinDestinations } from '../config/destinations.js';
import { destinationSchema, type DestinationConfig, type MailerConfig, type ProviderConfig } from '../config/schema.js';
import type { InternalEmitter } from '../emitter.js';
import { paceRate } from '../limiter/gcra.js';
import type { LaneLimiter, LaneSpec, Limiter, RateWindowSpec } from '../limiter/limiter.js';
import { collectSecrets, createRedactor, type Redactor } from '../redact.js';
import { DEFAULT_CONTROLLER } from './controller.js';
import { Lane } from './lane.js';
import { createRouter, type GroupSpec } from './router.js';
import { createTransportFactory, type TransportFactory, type TransportInput } from './transport.js';

export interface Lanes {
  /** Every lane, by key: `provider`, or `provider:group` and `provider:*` with destination groups. */
  all: Map<string, Lane>;
  providers: string[];
  /**
   * The lane of a message for `provider`, or undefined when the provider is unknown. A promise only
   * when destination groups route by recipient (an MX lookup may be needed).
   */
  pick(provider: string, recipients: readonly string[]): Lane | undefined | Promise<Lane | undefined>;
  close(): Promise<void>;
}

/** The key of a provider's lane for recipients outside every destination group. */
const DEFAULT_GROUP = '*';

/**
 * The lanes: one per provider, or, with destination groups, one per provider × group plus one for
 * everything else, each with its own limiter state and controller, all under the provider's limits.
 */
export function createLanes(config: MailerConfig, limiter: Limiter, emitter: InternalEmitter): Lanes {
  const redact = createRedactor(Object.values(config.providers).flatMap((p) => collectSecrets(p.transport)));
  const groups = destinationGroups(config);
  const router = groups.length ? createRouter({ groups, resolveMx: config.dns.resolveMx, cacheTtlMs: config.dns.cacheTtl }) : undefined;
  const context: LaneContext = { config, emitter, redact };
  const all = new Map<string, Lane>();
  const transports: TransportFactory[] = [];

  for (const [provider, options] of Object.entries(config.providers)) {
    const windows = asWindows(options.rate);
    const providerSpec: LaneSpec = { windows, maxConnections: options.maxConnections };
    const transport = createTransportFactory(options.transport as TransportInput, options.maxMessagesPerConnection);
    transports.push(transport);
    if (!router) {
      all.set(provider, lane(provider, provider, providerSpec, limiter.lane(provider, providerSpec), undefined, transport, options, context));
      continue;
    }
    const shared = limiter.lane(provider, providerSpec);
    for (const group of [...groups, undefined]) {
      const key = `${provider}:${group?.name ?? DEFAULT_GROUP}`;
      // The lane's own copy of the provider's windows gives its controller a rate to slow down.
      const spec: LaneSpec = { windows: [...windows, ...(group?.windows ?? [])], maxConnections: Math.min(options.maxConnections, group?.maxConnections ?? Infinity) };
      all.set(key, lane(key, provider, spec, limiter.lane(key, spec), shared, transport, options, context));
    }
  }

  return {
    all,
    providers: Object.keys(config.providers),
    pick(provider, recipients) {
      if (!router) return all.get(provider);
      if (!(provider in config.providers)) return undefined;
      return router.groupFor(recipients).then((group) => all.get(`${provider}:${group ?? DEFAULT_GROUP}`));
    },
    async close() {
      await Promise.all([...all.values()].map((l) => l.close()));
      for (const transport of transports) transport.close();
    },
  };
}

interface LaneContext {
  config: MailerConfig;
  emitter: InternalEmitter;
  redact: Redactor;
}

function lane(key: string, provider: string, spec: LaneSpec, own: LaneLimiter, shared: LaneLimiter | undefined, transport: TransportFactory, options: ProviderConfig, context: LaneContext): Lane {
  const { config, emitter, redact } = context;
  return new Lane({
    name: key,
    provider,
    spec,
    limiter: own,
    shared,
    transport,
    controller: {
      ...DEFAULT_CONTROLLER,
      maxConnections: spec.maxConnections,
      baseRatePerSecond: paceRate(spec.windows),
      decrease: config.adaptive.decrease,
      increase: config.adaptive.increase,
      minRateFactor: config.adaptive.minRate,
      cooldownMs: config.adaptive.cooldown,
    },
    // A quota refusal that names no delay: wait out the longest window (a daily quota resets within it).
    quotaPauseMs: Math.max(config.retry.maxDelay, ...asWindows(options.rate).map((w) => w.perMs)),
    maxRatePauseMs: config.retry.maxRetryTime,
    redact,
    onThrottle: (event) => emitter.emit('throttle', event),
    onLimiterError: (error) => emitter.emit('error', { error: new Error(redact(error.message)), source: 'limiter' }),
  });
}

/**
 * The configured groups: the built-ins unless switched off (`name: false`); a user group of a
 * built-in's name overrides what it sets (its limits, say) and keeps the built-in's domains and MX
 * suffixes unless it gives its own.
 */
function destinationGroups(config: MailerConfig): GroupSpec[] {
  if (!config.destinations) return [];
  const builtins: Record<string, DestinationConfig> = Object.fromEntries(Object.entries(builtinDestinations).map(([name, group]) => [name, destinationSchema.parse(group)]));
  const merged: Record<string, DestinationConfig | false> = { ...builtins };
  for (const [name, group] of Object.entries(config.destinations)) merged[name] = group === false ? false : { ...builtins[name], ...definedOnly(group) };
  return Object.entries(merged).flatMap(([name, group]) =>
    group === false ? [] : [{ name, domains: group.domains ?? [], mx: group.mx ?? [], windows: asWindows(group.rate), maxConnections: group.maxConnections }],
  );
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A provider's or group's `rate` (one window, a list, or none) as a list. */
export function asWindows(rate: RateWindowSpec | RateWindowSpec[] | undefined): RateWindowSpec[] {
  return rate === undefined ? [] : Array.isArray(rate) ? rate : [rate];
}
