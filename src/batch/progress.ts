import type { ProgressEvent } from '../events.js';
import type { BatchReport } from './batch.js';

/** The running counts of the batch: its report as it fills. */
type Counts = Pick<BatchReport, 'id' | 'total' | 'sent' | 'failed' | 'skipped' | 'inDoubt'>;

/** How far back the "rate now" looks. */
const RATE_WINDOW_MS = 5_000;

/** Builds `progress` events from a batch's running counts: rate over the last few seconds, time left. */
export function createProgress(counts: Counts, knownTotal: number | undefined, inFlight: () => number, emit: (event: ProgressEvent) => void, started: number) {
  const samples: Array<{ at: number; done: number }> = [];
  return {
    emit() {
      const now = Date.now();
      const done = counts.sent + counts.failed + counts.skipped + counts.inDoubt;
      samples.push({ at: now, done });
      while (samples.length > 2 && samples[0]!.at < now - RATE_WINDOW_MS) samples.shift();
      // Until there are two samples, the rate since the batch started.
      const first = samples.length > 1 ? samples[0]! : { at: started, done: 0 };
      const span = now - first.at;
      const ratePerSecond = span > 0 ? ((done - first.done) * 1_000) / span : 0;
      const left = knownTotal === undefined ? undefined : Math.max(0, knownTotal - done);
      emit({
        batchId: counts.id,
        total: counts.total,
        sent: counts.sent,
        failed: counts.failed,
        skipped: counts.skipped,
        inDoubt: counts.inDoubt,
        inFlight: inFlight(),
        ratePerSecond,
        etaMs: left === undefined ? undefined : left === 0 ? 0 : ratePerSecond > 0 ? (left / ratePerSecond) * 1_000 : undefined,
        elapsedMs: now - started,
      });
    },
  };
}
