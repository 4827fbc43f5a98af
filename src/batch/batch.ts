import type { BeforeSend } from '../lanes/lane.js';
import { AbortedError, BatchSourceError, isAbortedError, isDeliveryError } from '../errors.js';
import type { ProgressEvent } from '../events.js';
import { prepareMessage, type Message, type PreparedMessage } from '../message.js';
import { sleep } from '../retry/sleep.js';
import type { DecisionKind } from '../smtp/decision.js';
import type { LedgerRun } from './ledger.js';
import { createProgress } from './progress.js';

/** Options of `sendBatch`. */
export interface BatchOptions<T> {
  /** Batch id: with it, the batch is resumable and two runs of it never send a message twice. */
  id?: string;
  /**
   * Turns an item into a message with an `id` (the idempotency key). Without an `id`, the item's
   * position in the source stands in, which resumes correctly only if the source keeps its order.
   * @default the item itself is the message
   */
  build?: (item: T, index: number) => Message | Promise<Message>;
  /** Picks the provider of a message that names none. @default the first provider */
  route?: (message: Message) => string | undefined;
  /** Messages in progress at once (sending, waiting for a slot, or waiting to retry). @default 200 */
  concurrency?: number;
  /** Send in waves of this many messages... @default no waves */
  waveSize?: number;
  /** ...one wave per this long (from the start of one wave to the start of the next). */
  waveInterval?: number | string;
  /** Stops the batch: nothing new starts, waiting messages are given back, sends on the wire finish. */
  signal?: AbortSignal;
  /** Send again messages whose outcome is unknown. @default the mailer's `retry.resendInDoubt` */
  resendInDoubt?: boolean;
  /** How often `progress` events come. @default '1s' */
  progressInterval?: number | string;
  /** The number of items, for the estimated time left, when the source cannot tell. */
  total?: number;
}

export interface BatchFailure {
  id: string;
  to: string[];
  decision: DecisionKind;
  responseCode: number | undefined;
  response: string | undefined;
  message: string;
}

export interface BatchReport {
  id: string | undefined;
  /** Items taken from the source. */
  total: number;
  sent: number;
  failed: number;
  /** Already sent by an earlier run, held by another run, or a duplicate id in this batch. */
  skipped: number;
  /** Outcome unknown (the server may have accepted them); not sent again unless `resendInDoubt`. */
  inDoubt: number;
  /** Stopped by the signal before they were sent: a re-run sends them. */
  pending: number;
  /** Whether the signal stopped the batch before the source was exhausted. */
  aborted: boolean;
  durationMs: number;
  failures: BatchFailure[];
  /** Ids of the in-doubt messages. */
  inDoubtIds: string[];
}

export interface BatchContext {
  /** Delivers one message; calls `resolve` once it is sent or `reject` with why not, once (`resolve` may be called in a transport's callback). */
  deliver: (prepared: PreparedMessage, options: { signal: AbortSignal; beforeSend: BeforeSend | undefined; resendInDoubt: boolean }, resolve: () => void, reject: (error: unknown) => void) => void;
  /** A ledger run for the batch id, or undefined: then duplicates are caught in memory. */
  ledger: LedgerRun | undefined;
  resendInDoubt: boolean;
  emitProgress: (event: ProgressEvent) => void;
  /** Reports a message that failed before it reached a lane (build threw, bad address): `message` when it was built, for its provider. */
  emitFailed: (id: string, message: Message | undefined, recipients: string[], problem: string, cause?: unknown) => void;
  progressIntervalMs: number;
  waveIntervalMs: number | undefined;
}

const NEVER = new AbortController().signal;

export type BatchSource<T> = Iterable<T> | AsyncIterable<T>;

/**
 * Runs a batch: pulls items only as fast as messages finish (at most `concurrency` in progress),
 * so memory stays flat however long the source; each message is claimed, sent and settled on its
 * own, so one bad message fails alone.
 */
export async function runBatch<T>(source: BatchSource<T>, options: BatchOptions<T>, context: BatchContext): Promise<BatchReport> {
  const started = Date.now();
  const concurrency = options.concurrency ?? 200;
  const report: BatchReport = { id: options.id, total: 0, sent: 0, failed: 0, skipped: 0, inDoubt: 0, pending: 0, aborted: false, durationMs: 0, failures: [], inDoubtIds: [] };
  const { ledger } = context;
  const seen = ledger ? undefined : new Set<string>();
  const signal = options.signal;
  const knownTotal = options.total ?? (Array.isArray(source) ? source.length : undefined);
  let iterator: ReturnType<typeof toAsyncIterator<T>>;
  try {
    iterator = toAsyncIterator(source);
  } catch (error) {
    await ledger?.close();
    throw error;
  }
  const progress = createProgress(report, knownTotal, () => inFlight, context.emitProgress, started);
  const timer = setInterval(progress.emit, context.progressIntervalMs);

  let inFlight = 0;
  let freed: (() => void) | undefined;
  /** `done` is starting messages further up the stack: a message settled at once (refused, a duplicate) leaves its slot to that loop. */
  let feeding = false;
  const done = () => {
    inFlight--;
    if (feeding) return;
    // A message finished: the next one starts here when it can, else the loop below takes over.
    if (!feedsDirectly) return freed?.();
    // A loop, not a call per message: messages that settle as they start (refused ones) would
    // otherwise each start the next one a frame deeper, a stack as deep as the run of them.
    feeding = true;
    try {
      while (startNext());
    } finally {
      feeding = false;
    }
    if (inFlight < concurrency || exhausted || signal?.aborted) freed?.();
  };
  /** `one` settles its own failures: a rejection is a bug, and stays unhandled after the count is kept. */
  const doneAfterBug = (error: unknown) => {
    done();
    throw error;
  };
  const start = (item: T) => {
    report.total++;
    inWave++;
    inFlight++;
    const at = index++;
    let message: Message | PromiseLike<Message>;
    try {
      message = options.build ? options.build(item, at) : (item as Message);
    } catch (error) {
      refuseFor('build', `#${at}`, error);
      return done();
    }
    // A message built at once and no ledger to ask: it goes now, settled by callbacks (no promise
    // per message). One still being built, or one the ledger must claim first, goes through `one`.
    if (ledger || isPromiseLike(message)) void one(message, at).then(done, doneAfterBug);
    else now(message, at);
  };

  /** The message's id in the batch: its own `id`, or its position in the source. */
  const idOf = (message: Message, index: number) => (message && typeof message === 'object' && typeof message.id === 'string' && message.id) || `#${index}`;

  /** Checks and routes a message; `undefined` when it was refused (and counted as failed). */
  const prepare = (message: Message, id: string): PreparedMessage | undefined => {
    const prepared = prepareMessage(message);
    if ('problem' in prepared) return void refuse(id, prepared.problem, undefined, { message, recipients: prepared.recipients });
    if (prepared.provider === undefined && options.route) {
      let routed: string | undefined;
      try {
        routed = options.route(message);
      } catch (error) {
        return void refuseFor('route', id, error, { message, recipients: prepared.recipients });
      }
      if (routed !== undefined) prepared.provider = routed;
    }
    return prepared;
  };

  /** A message built at once, in a batch without a ledger (duplicate ids are caught in memory). */
  const now = (message: Message, index: number): void => {
    const id = idOf(message, index);
    const prepared = prepare(message, id);
    if (!prepared) return done();
    if (claimHere(id) === 'busy') {
      report.skipped++;
      return done();
    }
    context.deliver(
      prepared,
      plain,
      () => {
        report.sent++;
        done();
      },
      (error) => {
        counted(error, id, prepared, false);
        done();
      },
    );
  };

  const one = async (built: Message | PromiseLike<Message>, index: number): Promise<void> => {
    let message: Message;
    try {
      message = await built;
    } catch (error) {
      return refuseFor('build', `#${index}`, error);
    }
    const id = idOf(message, index);
    const prepared = prepare(message, id);
    if (!prepared) return;

    // The item's position names its claim: a claim retried after a timeout is still its own.
    const claim = ledger ? await untilDone(() => ledger.claim(id, String(index)), signal) : claimHere(id);
    if (claim === undefined) {
      report.pending++;
      return;
    }
    if (claim === 'sent' || claim === 'busy') {
      report.skipped++;
      return;
    }
    if (claim === 'in-doubt') {
      report.inDoubt++;
      report.inDoubtIds.push(id);
      return;
    }
    let lost = false;
    try {
      // Recording the attempt waits out a Redis outage: sending unrecorded could send twice later.
      // A claim another run took over (this one's heartbeat lapsed: a frozen process) is theirs to send.
      const beforeSend = ledger
        ? async (attemptSignal: AbortSignal | undefined, deadline: number) => {
            const mine = await untilDone(() => ledger.sending(id), attemptSignal, deadline);
            if (mine === undefined) throw new Error('gave up waiting for the ledger');
            if (!mine) {
              lost = true;
              throw new AbortedError(`message ${id} was taken over by another run of the batch`);
            }
          }
        : undefined;
      await new Promise<void>((resolve, reject) => context.deliver(prepared, beforeSend ? { ...plain, beforeSend } : plain, resolve, reject));
      report.sent++;
      if (ledger) await settle(ledger, id, 'sent');
    } catch (error) {
      await settle(ledger, id, counted(error, id, prepared, lost));
    }
  };

  /** Counts a message that was not sent, by why; returns how its ledger entry settles. */
  const counted = (error: unknown, id: string, prepared: PreparedMessage, lost: boolean): 'released' | 'in-doubt' | 'failed' | 'sent' | undefined => {
    if (lost) {
      report.skipped++;
      return undefined;
    }
    if (isAbortedError(error)) {
      report.pending++;
      return 'released';
    }
    if (isDeliveryError(error) && error.inDoubt) {
      report.inDoubt++;
      report.inDoubtIds.push(id);
      return 'in-doubt';
    }
    if (isDeliveryError(error) && error.accepted.length > 0) {
      // Failed after a part was accepted: the failure names the recipients it did not reach, and
      // the ledger holds it as done, since a re-run would send it again to those it reached.
      const reached = new Set(error.accepted.map((to) => to.toLowerCase()));
      fail(report, id, prepared.recipients.filter((to) => !reached.has(to.toLowerCase())), error.decision, error.responseCode, error.response, error.message);
      return 'sent';
    }
    if (isDeliveryError(error)) fail(report, id, prepared.recipients, error.decision, error.responseCode, error.response, error.message);
    else fail(report, id, prepared.recipients, 'transient', undefined, undefined, (error as Error)?.message ?? String(error));
    return 'failed';
  };

  /** A message whose `build` or `route` threw: refused like any other (`build failed: …`, `route failed: …`). */
  const refuseFor = (step: 'build' | 'route', id: string, error: unknown, built?: Refused) => refuse(id, `${step} failed: ${(error as Error)?.message ?? String(error)}`, error, built);

  /** Claims `id` in this run's memory (a batch without a ledger): `'busy'` when an earlier item of the batch had it. */
  const claimHere = (id: string): 'busy' | 'claimed' => (seen!.has(id) ? 'busy' : (seen!.add(id), 'claimed'));

  /** A message that fails before it is sent: reported in the batch and as a `failed` event, like any other. */
  const refuse = (id: string, problem: string, cause: unknown, built?: Refused) => {
    const recipients = built?.recipients ?? [];
    fail(report, id, recipients, 'permanent', undefined, undefined, problem);
    context.emitFailed(id, built?.message, recipients, problem, cause);
  };

  /** What every message of the batch is delivered with (and its own `beforeSend` with a ledger). */
  const plain = { signal: signal ?? NEVER, beforeSend: undefined, resendInDoubt: context.resendInDoubt };
  /** An async source's `next()` still pending when the batch was aborted (it may never settle). */
  let pendingNext = false;
  let index = 0;
  let waveStart = Date.now();
  let inWave = 0;
  /** The source has no more items, or its `next()` threw (`sourceError`). */
  let exhausted = false;
  let sourceFailed = false;
  let sourceError: unknown;
  /** The source failed as it was closed (`return()` threw), not as it was read. */
  let closeThrew = false;
  // A synchronous source without waves: a finished message starts the next item itself, with no
  // promise and no turn of the loop per message. Anything else (an abort, the end, a throw) wakes the loop.
  const feedsDirectly = iterator.sync !== undefined && !options.waveSize;
  /** Starts the next item of a synchronous source, if one may start and there is one. */
  const startNext = (): boolean => {
    if (exhausted || signal?.aborted || inFlight >= concurrency) return false;
    let next: IteratorResult<T>;
    try {
      next = iterator.sync!.next();
    } catch (error) {
      sourceFailed = true;
      sourceError = error;
      exhausted = true;
      return false;
    }
    if (next.done) {
      exhausted = true;
      return false;
    }
    start(next.value);
    return true;
  };
  try {
    for (;;) {
      if (sourceFailed) break;
      if (signal?.aborted) {
        report.aborted = true;
        break;
      }
      if (exhausted) break;
      if (inFlight >= concurrency) {
        await new Promise<void>((resolve) => (freed = resolve));
        freed = undefined;
        continue;
      }
      if (options.waveSize && inWave >= options.waveSize) {
        const wait = waveStart + (context.waveIntervalMs ?? 0) - Date.now();
        if (wait > 0) await sleep(wait, signal).catch(() => {});
        if (signal?.aborted) continue;
        waveStart = Date.now();
        inWave = 0;
      }
      // A synchronous source (an array) is read without a promise per item, as finished messages
      // read it: its end or its throw is seen at the top of the loop.
      if (iterator.sync) {
        startNext();
        continue;
      }
      let next: IteratorResult<T> | typeof ABORTED;
      try {
        next = await nextUnlessAborted(iterator, signal);
      } catch (error) {
        sourceFailed = true;
        sourceError = error;
        continue;
      }
      if (next === ABORTED) {
        pendingNext = true;
        continue;
      }
      if (next.done) {
        exhausted = true;
        break;
      }
      start(next.value);
    }
  } finally {
    while (inFlight > 0) {
      await new Promise<void>((resolve) => (freed = resolve));
      freed = undefined;
    }
    // The source is closed once nothing is in flight: a cursor whose close throws fails the batch,
    // but only after every message it started has settled and the ledger is closed.
    if (report.aborted) {
      // An async generator runs return() after its pending next(), which may never come: not awaited then.
      const closing = Promise.resolve().then(() => iterator.return?.());
      if (pendingNext) void closing.catch(() => {});
      else
        await closing.catch((error: unknown) => {
          sourceFailed = true;
          sourceError = error;
          closeThrew = true;
        });
    }
    clearInterval(timer);
    // Stopped with messages given back counts as aborted even when the source had been read to its end.
    if (signal?.aborted && report.pending > 0) report.aborted = true;
    await ledger?.close();
    report.durationMs = Date.now() - started;
    progress.emit();
  }
  if (sourceFailed) throw sourceFailure(report, sourceError, closeThrew);
  return report;
}

/** What `sendBatch` rejects with when its source fails: the source's error as `cause`, and the report of what was done. */
function sourceFailure(report: BatchReport, error: unknown, onClose: boolean): BatchSourceError {
  const why = (error as Error)?.message ?? String(error);
  const resume = report.id === undefined ? '' : `; a re-run with batch id ${JSON.stringify(report.id)} sends the rest`;
  const message = onClose
    ? `sendBatch: the source's return() threw after every message had settled (${report.sent} sent, ${report.failed} failed): ${why}`
    : `sendBatch stopped: the source threw after ${report.total} items (${report.sent} sent, ${report.failed} failed)${resume}: ${why}`;
  return new BatchSourceError(message, report, { cause: error });
}

/** A message refused after it was built: it names its provider, and the well-formed recipients it did not reach. */
interface Refused {
  message: Message;
  recipients: string[];
}

function fail(report: BatchReport, id: string, to: string[], decision: DecisionKind, responseCode: number | undefined, response: string | undefined, message: string): void {
  report.failed++;
  report.failures.push({ id, to, decision, responseCode, response, message });
}

const isPromiseLike = <V>(value: V | PromiseLike<V>): value is PromiseLike<V> => typeof (value as PromiseLike<V> | null)?.then === 'function';

/** Records a settlement; a ledger that stays unreachable leaves the entry `sending`: in doubt, never resent blindly. */
async function settle(ledger: LedgerRun | undefined, id: string, outcome: 'sent' | 'failed' | 'in-doubt' | 'released' | undefined): Promise<void> {
  if (!ledger || !outcome) return;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await ledger.settle(id, outcome);
    } catch {
      await sleep(200 * 2 ** attempt);
    }
  }
}

const ABORTED = Symbol('aborted');

/** The source's next item, or `ABORTED` as soon as the signal aborts while it is still coming (a cursor waiting on its database). */
function nextUnlessAborted<T>(iterator: AsyncIterator<T>, signal: AbortSignal | undefined): Promise<IteratorResult<T> | typeof ABORTED> {
  const next = iterator.next();
  if (!signal) return next;
  if (signal.aborted) {
    void next.catch(() => {});
    return Promise.resolve(ABORTED);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      void next.catch(() => {});
      resolve(ABORTED);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    next.then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Retries a ledger call until it answers (Redis may be away for a while), or the signal aborts, or the deadline (epoch ms) passes. */
async function untilDone<R>(call: () => Promise<R>, signal: AbortSignal | undefined, deadline = Infinity): Promise<R | undefined> {
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted || Date.now() >= deadline) return undefined;
    try {
      return await call();
    } catch {
      await sleep(Math.min(2_000, 50 * 2 ** attempt, Math.max(0, deadline - Date.now())), signal).catch(() => {});
    }
  }
}

function toAsyncIterator<T>(source: BatchSource<T>): AsyncIterator<T> & { sync?: Iterator<T> } {
  if (source && typeof (source as AsyncIterable<T>)[Symbol.asyncIterator] === 'function') return (source as AsyncIterable<T>)[Symbol.asyncIterator]();
  if (source && typeof (source as Iterable<T>)[Symbol.iterator] === 'function') {
    const it = (source as Iterable<T>)[Symbol.iterator]();
    return {
      sync: it,
      next: async () => it.next(),
      return: async (value?: unknown) => it.return?.(value as T) ?? { done: true, value: undefined as T },
    };
  }
  throw new TypeError('sendBatch: expected an array, an iterable or an async iterable as the source');
}
