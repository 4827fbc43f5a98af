import { promises as dns } from 'node:dns';
import { paceRate } from '../limiter/gcra.js';
import type { RateWindowSpec } from '../limiter/limiter.js';

export interface GroupSpec {
  name: string;
  domains: readonly string[];
  mx: readonly string[];
  windows: readonly RateWindowSpec[];
  maxConnections: number | undefined;
}

export type ResolveMx = (domain: string) => Promise<Array<{ exchange: string; priority: number }>>;

export interface RouterOptions {
  groups: readonly GroupSpec[];
  resolveMx?: ResolveMx | undefined;
  cacheTtlMs: number;
  now?: () => number;
}

/** Remembered MX answers at most; the oldest go first. */
const MX_CACHE_SIZE = 10_000;

/**
 * Finds the destination group of a message's recipients: by domain first, then, for custom
 * domains, by the host of their preferred MX record (cached for `cacheTtlMs`, failures too, so an
 * unresolvable domain costs one lookup per TTL). A message whose recipients fall into several
 * groups goes through the strictest one's lane: one SMTP transaction, under the tightest limits.
 */
export function createRouter(options: RouterOptions) {
  const now = options.now ?? Date.now;
  const resolveMx: ResolveMx = options.resolveMx ?? ((domain) => dns.resolveMx(domain));
  const byDomain = new Map<string, GroupSpec>();
  for (const group of options.groups) for (const domain of group.domains) byDomain.set(domain, group);
  const mxGroups = options.groups.filter((g) => g.mx.length > 0);
  const cache = new Map<string, { group: GroupSpec | undefined; expiresAt: number; pending?: Promise<GroupSpec | undefined> }>();

  async function byMx(domain: string): Promise<GroupSpec | undefined> {
    if (mxGroups.length === 0) return undefined;
    const cached = cache.get(domain);
    if (cached && (cached.pending || cached.expiresAt > now())) return cached.pending ?? cached.group;
    const pending = resolveMx(domain)
      .then((records) => {
        const preferred = [...records].sort((a, b) => a.priority - b.priority)[0]?.exchange.toLowerCase().replace(/\.$/, '');
        return preferred === undefined ? undefined : mxGroups.find((g) => g.mx.some((suffix) => preferred === suffix || preferred.endsWith(`.${suffix}`)));
      })
      .catch(() => undefined)
      .then((group) => {
        cache.delete(domain);
        cache.set(domain, { group, expiresAt: now() + options.cacheTtlMs });
        if (cache.size > MX_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        return group;
      });
    cache.set(domain, { group: undefined, expiresAt: 0, pending });
    return pending;
  }

  async function groupOf(address: string): Promise<GroupSpec | undefined> {
    const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
    for (let d = domain; d.includes('.'); d = d.slice(d.indexOf('.') + 1)) {
      const group = byDomain.get(d);
      if (group) return group;
    }
    return byMx(domain);
  }

  return {
    /** The group of the message's lane, or `undefined` for the provider's default lane. */
    async groupFor(recipients: readonly string[]): Promise<string | undefined> {
      const groups = await Promise.all([...new Set(recipients)].map(groupOf));
      let strictest: GroupSpec | undefined;
      for (const group of groups) if (group && (!strictest || strictness(group) < strictness(strictest))) strictest = group;
      return strictest?.name;
    },
  };
}

/** Lower is stricter: the group's tightest rate (sends per second), then its connection cap. */
function strictness(group: GroupSpec): number {
  const rate = paceRate(group.windows);
  return rate === Infinity ? 1e12 + (group.maxConnections ?? 1e6) : rate;
}
