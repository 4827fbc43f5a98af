import { randomUUID } from 'node:crypto';
import { observe, type RedisHealth } from '../limiter/failover.js';
import { sleep } from '../retry/sleep.js';
import { runScript as run, type ScriptClient } from '../limiter/scripts.js';
import type { ClaimResult, Ledger, Settlement } from './ledger.js';

export interface RedisLedgerOptions {
  client: ScriptClient;
  keyPrefix: string;
  /** How long a batch's entries are kept after its last run. */
  ttlMs: number;
  /**
   * How long a run's claims outlive its last heartbeat. Another run takes over the claims of a run
   * whose heartbeat is older than this (its process died), so keep it well above any Redis outage
   * a live process should survive with its claims intact.
   * @default 60_000
   */
  leaseMs?: number;
  /** Told of every call's outcome, so that an outage is reported once, with the limiter's. */
  health?: RedisHealth;
  /** A call that takes longer fails (and is retried by the batch): ioredis would otherwise hold it until Redis returns. @default 5_000 */
  callTimeoutMs?: number;
}

const MARK: Record<Settlement | 'sending', string> = { sending: 's', sent: 'S', failed: 'f', 'in-doubt': 'd', released: '-' };

/** Ledger keys of a batch: one hash tag per batch, so that the ledger and its runs share a Cluster slot. */
export function ledgerKeys(keyPrefix: string, batchId: string): { entries: string; owners: string } {
  const base = `${keyPrefix}:{batch:${batchId}}`;
  return { entries: `${base}:ledger`, owners: `${base}:owners` };
}

/**
 * The ledger in Redis: shared by every process, so that a batch resumes after a crash or a deploy
 * and two processes running the same batch never send a message twice. One script call per claim
 * and per state change; a heartbeat per run every `leaseMs / 4`.
 */
export function createRedisLedger(options: RedisLedgerOptions): Ledger {
  const { client, keyPrefix, ttlMs } = options;
  const leaseMs = options.leaseMs ?? 60_000;
  const runScript: typeof run = (...args) => observe(options.health, run(...args), options.callTimeoutMs ?? 5_000);
  return {
    async open(batchId, { resendInDoubt, signal }) {
      const keys = ledgerKeys(keyPrefix, batchId);
      const run = randomUUID();
      const beat = () => runScript(client, 'ledger-beat', [keys.entries, keys.owners], [run, leaseMs, ttlMs]);
      // Redis away as the batch starts: the run waits for it, as its claims would (a claim before
      // the first beat could be taken over by another run as a dead one's).
      for (let attempt = 0; ; attempt++) {
        try {
          await beat();
          break;
        } catch {
          await sleep(Math.min(2_000, 50 * 2 ** attempt), signal);
        }
      }
      // A missed beat (Redis away) is retried at the next tick; claims survive for leaseMs.
      const timer = setInterval(() => void beat().catch(() => {}), leaseMs / 4);
      const mark = async (id: string, state: string) => Number(await runScript(client, 'ledger-mark', [keys.entries], [id, run, state])) === 1;
      return {
        claim: async (id, token) => (await runScript(client, 'ledger-claim', [keys.entries, keys.owners], [id, run, resendInDoubt ? '1' : '0', token, ttlMs])) as ClaimResult,
        sending: (id) => mark(id, MARK.sending),
        settle: async (id, outcome) => void (await mark(id, MARK[outcome])),
        async close() {
          clearInterval(timer);
          // The first beat may have come before the ledger existed: this one gives it its TTL.
          await beat().catch(() => {});
        },
      };
    },
    async close() {},
  };
}
