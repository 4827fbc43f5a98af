/**
 * The ledger of a batch: which message ids were claimed, are being sent, were sent. It makes a
 * batch resumable and keeps two runs of the same batch from sending a message twice.
 *
 * A message id goes `claimed` → `sending` (before each attempt touches the network) → `sent` |
 * `failed` | `in-doubt`, or back to nothing when a run gives it up before sending (abort).
 * A claim belongs to a run (the owner); when the owner is gone (its process died), a `claimed`
 * entry is free again and a `sending` one is in doubt: the server may have taken it.
 */
export type ClaimResult =
  /** This run owns the message now: send it. */
  | 'claimed'
  /** Sent by an earlier run (or earlier in this one): skip it. */
  | 'sent'
  /** Its outcome is unknown: not sent again unless `resendInDoubt`. */
  | 'in-doubt'
  /** Another live run holds it, or this run already has it in flight (a duplicate id). */
  | 'busy';

export type Settlement = 'sent' | 'failed' | 'in-doubt' | 'released';

export interface LedgerRun {
  /**
   * Claims a message id for this run. `token` names the claiming item within the run (its position
   * in the batch): the same claim made again (a retry after a timeout, a command sent again after a
   * reconnect) answers `claimed` again, while another item of the run with the same id is `busy`.
   */
  claim(id: string, token: string): Promise<ClaimResult>;
  /**
   * Records that an attempt of `id` is about to go to the network. `false` when the claim is no
   * longer this run's (another run took it over after this one's heartbeat lapsed): do not send.
   */
  sending(id: string): Promise<boolean>;
  /** Records how `id` ended for this run. */
  settle(id: string, outcome: Settlement): Promise<void>;
  /** Ends the run: stops its heartbeat. Entries stay until the ledger's TTL. */
  close(): Promise<void>;
}

export interface Ledger {
  /**
   * Starts a run of batch `batchId`. `resendInDoubt` turns in-doubt entries into claims. A ledger
   * in Redis waits for Redis to answer, until `signal` aborts (then it rejects with its reason).
   */
  open(batchId: string, options: { resendInDoubt: boolean; signal?: AbortSignal }): Promise<LedgerRun>;
  close(): Promise<void>;
}

// An entry is one number, state, owner and a flag packed together: a million-message batch costs a
// Map of numbers, not a million small objects. The flag marks a claim (or its sending mark) that
// took over an entry in doubt (resendInDoubt): given back unsent, the entry is in doubt again.
const STATES = ['claimed', 'sending', 'sent', 'failed', 'in-doubt'] as const;
type State = (typeof STATES)[number];
const pack = (state: State, owner: number, doubt = false): number => owner * 16 + (doubt ? 8 : 0) + STATES.indexOf(state);
const stateOf = (entry: number): State => STATES[entry % 8]!;
const ownerOf = (entry: number): number => Math.floor(entry / 16);
const doubtOf = (entry: number): boolean => Math.floor(entry / 8) % 2 === 1;

/**
 * The ledger in this process's memory: a re-run in the same process resumes; a new process starts
 * over. Entries of a batch are dropped `ttlMs` after its last run opened.
 */
export function createMemoryLedger(options: { ttlMs: number; now?: () => number }): Ledger {
  const now = options.now ?? Date.now;
  const batches = new Map<string, { entries: Map<string, number>; expiresAt: number; live: Set<number> }>();
  let runs = 0;

  return {
    async open(batchId, { resendInDoubt }) {
      for (const [key, batch] of batches) if (batch.expiresAt <= now() && batch.live.size === 0) batches.delete(key);
      let batch = batches.get(batchId);
      if (!batch) batches.set(batchId, (batch = { entries: new Map(), expiresAt: 0, live: new Set() }));
      batch.expiresAt = now() + options.ttlMs;
      const owner = ++runs;
      batch.live.add(owner);
      const { entries, live } = batch;
      return {
        // A call here runs once (no network to repeat it): the token is not needed to tell a repeat.
        async claim(id) {
          const entry = entries.get(id);
          if (entry !== undefined) {
            const state = stateOf(entry);
            if (state === 'sent') return 'sent';
            if ((state === 'claimed' || state === 'sending') && live.has(ownerOf(entry))) return 'busy';
            // Failed or left in doubt earlier in this same run: a repeat of the id in the batch, not a re-run.
            if ((state === 'failed' || state === 'in-doubt') && ownerOf(entry) === owner) return 'busy';
            const inDoubt = state === 'sending' || state === 'in-doubt' || doubtOf(entry);
            if (inDoubt && !resendInDoubt) {
              entries.set(id, pack('in-doubt', ownerOf(entry)));
              return 'in-doubt';
            }
            entries.set(id, pack('claimed', owner, inDoubt));
            return 'claimed';
          }
          entries.set(id, pack('claimed', owner));
          return 'claimed';
        },
        async sending(id) {
          const entry = entries.get(id);
          if (entry !== undefined && ownerOf(entry) !== owner) return false;
          entries.set(id, pack('sending', owner, entry !== undefined && doubtOf(entry)));
          return true;
        },
        async settle(id, outcome) {
          const entry = entries.get(id);
          const doubt = entry !== undefined && doubtOf(entry);
          if (outcome === 'released' && doubt) entries.set(id, pack('in-doubt', owner));
          else if (outcome === 'released') entries.delete(id);
          else entries.set(id, pack(outcome, owner));
        },
        async close() {
          live.delete(owner);
        },
      };
    },
    async close() {
      batches.clear();
    },
  };
}
