import type { MailerConfig } from '../config/schema.js';
import type { InternalEmitter } from '../emitter.js';
import type { Limiter, RateWindowSpec } from '../limiter/limiter.js';
import { collectSecrets, createRedactor } from '../redact.js';
import { DEFAULT_CONTROLLER } from './controller.js';
import { Lane } from './lane.js';
import { createTransportFactory, type TransportInput } from './transport.js';

/** One lane per provider, each with its limiter state, controller settings and transport. */
export function createLanes(config: MailerConfig, limiter: Limiter, emitter: InternalEmitter): Map<string, Lane> {
  const redact = createRedactor(Object.values(config.providers).flatMap((p) => collectSecrets(p.transport)));
  const lanes = new Map<string, Lane>();
  for (const [name, provider] of Object.entries(config.providers)) {
    const windows: RateWindowSpec[] = provider.rate === undefined ? [] : Array.isArray(provider.rate) ? provider.rate : [provider.rate];
    const spec = { windows, maxConnections: provider.maxConnections };
    const lane = new Lane({
      name,
      provider: name,
      spec,
      limiter: limiter.lane(name, spec),
      transport: createTransportFactory(provider.transport as TransportInput, provider.maxMessagesPerConnection),
      controller: {
        ...DEFAULT_CONTROLLER,
        maxConnections: provider.maxConnections,
        baseRatePerSecond: windows.length ? Math.min(...windows.map((w) => (w.max / w.perMs) * 1000)) : Infinity,
        decrease: config.adaptive.decrease,
        increase: config.adaptive.increase,
        minRateFactor: config.adaptive.minRate,
        cooldownMs: config.adaptive.cooldown,
      },
      // A quota refusal that names no delay: wait out the longest window (a daily quota resets within it).
      quotaPauseMs: Math.max(config.retry.maxDelay, ...windows.map((w) => w.perMs)),
      redact,
      onThrottle: (event) => emitter.emit('throttle', event),
      onLimiterError: (error) => emitter.emit('error', { error: new Error(redact(error.message)), source: 'limiter' }),
    });
    lanes.set(name, lane);
  }
  return lanes;
}
