import type { SendMailOptions, SentMessageInfo } from 'nodemailer';
import { AbortedError, isAbortedError } from '../errors.js';
import type { ThrottleEvent } from '../events.js';
import { isQuotaWindow, paceRate } from '../limiter/gcra.js';
import type { LaneLimiter, LaneSpec, Lease } from '../limiter/limiter.js';
import { AttemptFailure } from '../retry/attempt-failure.js';
import { MAX_TIMER_MS, sleep } from '../retry/sleep.js';
import { classifySmtpError, isTooManyRecipients } from '../smtp/classify.js';
import type { Decision } from '../smtp/decision.js';
import {
  initialState,
  onConnectionLimited,
  onRateLimited,
  onSuccess,
  pauseFor,
  stop,
  unstop,
  type AdaptiveState,
  type ControllerOptions,
  type StateTransition,
} from './controller.js';
import type { Redactor } from '../redact.js';
import { JobQueue } from './job-queue.js';
import type { Connection, TransportFactory } from './transport.js';

/** How long a connection stays open with nothing to send. */
const CONNECTION_IDLE_MS = 1_000;
/** How often queued jobs are checked against their deadline. */
const DEADLINE_SWEEP_MS = 250;
/** Sends a lane makes in one turn of the event loop before it lets the loop turn. */
const SENDS_PER_TURN = 256;
/**
 * How long a lane without rate windows sends on its last view of the shared state (a pause, a
 * stop, set by any process) before it reads it again: with no slot to book, a limiter call per
 * message would only re-read it (a Redis round trip per message).
 */
const STATE_REFRESH_MS = 100;
/**
 * The longest a quota refusal's named delay pauses a provider, unless `quotaPauseMs` (its longest
 * window, a 30-day quota) is longer. Quotas reset within their window: a longer delay ("try again
 * in 30 days", or words misread as a delay) would hold the provider's messages for it. Capped, the
 * lane sends again then, and a quota still spent pauses it again.
 */
const MAX_QUOTA_PAUSE_MS = 86_400_000;

export interface LaneOptions {
  /** The lane's key: `provider` or `provider:group`. */
  name: string;
  provider: string;
  spec: LaneSpec;
  limiter: LaneLimiter;
  /**
   * The provider's own limits, shared by all its lanes (when destination groups split it): every
   * send passes both. Lane events (slow-downs) change the lane only; a quota pause or a stop
   * (bad credentials) is the provider's, and reaches all its lanes through this.
   */
  shared?: LaneLimiter | undefined;
  transport: TransportFactory;
  controller: ControllerOptions;
  /**
   * Pause after a quota refusal that names no delay. Also bounds a named one, with a day
   * (`MAX_QUOTA_PAUSE_MS`), whichever is longer.
   */
  quotaPauseMs: number;
  /**
   * Longest pause a `rate-limited` reply's named delay makes (`retry.maxRetryTime`: no message waits
   * longer). A longer one ("try again in 3 days", or words misread as a delay) would hold the
   * provider's whole fleet for it; capped, the lane tries again then.
   */
  maxRatePauseMs: number;
  /** Removes credentials from reply texts before they leave the lane. */
  redact: Redactor;
  onThrottle: (event: ThrottleEvent) => void;
  /** Reports failures of the limiter itself (Redis down): the lane retries after a short wait. */
  onLimiterError: (error: Error) => void;
}

export interface LaneStats {
  provider: string;
  lane: string;
  /** Configured rate of the tightest window, sends per second (`null` when unlimited). */
  configuredRate: number | null;
  /** Effective rate now, after slow-downs. */
  effectiveRate: number | null;
  configuredConnections: number;
  effectiveConnections: number;
  /** Connections this process has open. */
  connections: number;
  queued: number;
  inFlight: number;
  sent: number;
  deferred: number;
  failed: number;
  state: 'idle' | 'sending' | 'paused' | 'stopped';
  pausedUntil: number;
}

/**
 * Called before each attempt goes to the network, with the message's signal and its retry deadline
 * (epoch ms), which bound how long it may wait; a rejection cancels the attempt.
 */
export type BeforeSend = (signal: AbortSignal | undefined, deadline: number) => Promise<void>;

/**
 * One attempt as a lane takes it: the message, how long it may wait, and where its outcome goes.
 * Exactly one of `resolve` and `reject` is called, once, as a method of this object: a caller may
 * keep its state here and need no closure per attempt.
 */
export interface Attempt {
  readonly mail: SendMailOptions;
  /** Stops waiting for the lane (the caller's signal, or the mailer closing). */
  readonly signal: AbortSignal | undefined;
  /** Epoch ms after which the attempt stops waiting for the lane (`Infinity`: no limit). */
  readonly deadline: number;
  readonly beforeSend: BeforeSend | undefined;
  /** Told, before the attempt goes, the time it waited through a quota pause: its deadline moved later by that much. */
  paused(ms: number): void;
  /** The server took the message. Called in the transport's callback: it must not throw. */
  resolve(info: SentMessageInfo): void;
  /** The attempt failed (`AttemptFailure`) or was called off (`AbortedError`); may be called before `submit` returns. */
  reject(failure: AttemptFailure | AbortedError): void;
}

/** The lane's record of a waiting attempt. */
interface Job {
  attempt: Attempt;
  signal: AbortSignal | undefined;
  /** Epoch ms after which the job gives up waiting (its message's retry deadline), as given or as moved by quota pauses. */
  deadline: number;
  /** `deadline` on the lane's quota clock (`Date.now()` less the quota pauses jobs waited through): what the queue expires by. */
  expires: number;
  /** Epoch ms of a slot booked for this job that it gave back its connection to wait for (a quota's): it goes then, without booking again. */
  slotAt: number | undefined;
}

export interface AttemptOptions {
  /** Stops waiting for the lane (the caller's signal, or the mailer closing). */
  signal?: AbortSignal | undefined;
  /**
   * Epoch ms after which the attempt stops waiting for the lane. @default no limit
   * Time the lane spends paused for a quota does not count: the deadline moves later by it.
   */
  deadline?: number;
  /** Called before the attempt goes with the time it waited through a quota pause (when it did), by which its deadline moved. */
  onPaused?: ((ms: number) => void) | undefined;
  beforeSend?: BeforeSend | undefined;
}

/**
 * A lane: one provider (× destination group) with its limiter, its adaptive controller and its
 * connections. `attempt()` makes one attempt of one message: it waits for a connection slot and a
 * rate slot, sends, and reports the server's answer to the controller. Retrying is the caller's.
 */
export class Lane {
  readonly name: string;
  readonly provider: string;
  #options: LaneOptions;
  /** Jobs waiting for a connection; one whose signal aborts gives up (an attempt in progress is not abandoned). */
  #queue = new JobQueue<Job>((job) => this.#gaveUp(job));
  #state: AdaptiveState;
  #workers = 0;
  #starting = 0;
  /** Connections with nothing to send, oldest first; each closes once idle for CONNECTION_IDLE_MS. */
  #idle: Array<{ since: number; wake: (woken: boolean) => void }> = [];
  /** One timer for every idle connection (not one per wait: a wait per message when sends trickle in). */
  #idleTimer: NodeJS.Timeout | undefined;
  #pacing = 0;
  #sending = 0;
  #closed = false;
  #wakeTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  /**
   * Time this lane has spent paused for a quota while jobs waited with a deadline, ms (counted by
   * the deadline sweep): the queue's clock is `Date.now()` less this, so a quota pause, the
   * account's and not the message's, does not run down the waiting messages' retry time.
   */
  #quotaPausedMs = 0;
  #sweptAt = 0;
  /** The lane has a quota window (longer than a minute), its own or its provider's. */
  #hasQuota: boolean;
  /**
   * Until when the lane waits for its configured quota: a booking in a quota lane put a job that
   * far out, so the lane takes no other job before then (each would book a slot as far out and
   * hold a connection for it), and the waiting messages' retry time stands still meanwhile.
   */
  #quotaUntil = 0;
  /** Sends since the event loop last turned (see `#letLoopTurn`). */
  #sendsThisTurn = 0;
  #abort = new AbortController();
  #counts = { sent: 0, deferred: 0, failed: 0 };
  /** No rate window to book (neither the lane's nor its provider's: the lane's spec holds both). */
  #unpaced: boolean;
  /** When `#state` was last read from the limiter. */
  #stateAt = -Infinity;
  /** Lifting a stop left in Redis by an earlier mailer; the first connection waits for it. Unset once done. */
  #ready: Promise<unknown> | undefined;

  constructor(options: LaneOptions) {
    this.name = options.name;
    this.provider = options.provider;
    this.#options = options;
    this.#state = initialState(options.spec);
    this.#unpaced = options.spec.windows.length === 0;
    this.#hasQuota = options.spec.windows.some(isQuotaWindow);
    this.#ready = Promise.all([options.limiter.update(unstop()), options.shared?.update(unstop())])
      .catch(() => {})
      .finally(() => (this.#ready = undefined));
  }

  /** One attempt at sending `mail`. Resolves with nodemailer's info, rejects with an `AttemptFailure`. */
  attempt(mail: SendMailOptions, { signal, deadline = Infinity, beforeSend, onPaused = noop }: AttemptOptions = {}): Promise<SentMessageInfo> {
    return new Promise((resolve, reject) => this.submit({ mail, signal, deadline, beforeSend, paused: onPaused, resolve, reject }));
  }

  /** `attempt()` without a promise: the outcome goes to `attempt`'s own methods. The hot path of a batch. */
  submit(attempt: Attempt): void {
    if (this.#state.stopped) return attempt.reject(this.#stoppedFailure());
    if (this.#closed) return attempt.reject(closedError());
    const { signal, deadline } = attempt;
    this.#queue.push({ attempt, signal, deadline, expires: deadline - this.#quotaPausedMs, slotAt: undefined });
    if (deadline !== Infinity) this.#watchDeadlines();
    this.#pump();
  }

  /** A job taken out of the queue before its turn: its signal aborted or its deadline passed. */
  #gaveUp(job: Job): void {
    job.attempt.reject(new AttemptFailure(this.#waitDecision(), { lane: this.name, message: `gave up waiting for lane ${this.name}`, cause: job.signal?.reason }));
  }

  // One timer per lane, not one per message: it gives up the queued jobs whose deadline passed.
  #watchDeadlines(): void {
    if (this.#deadlineTimer) return;
    this.#sweptAt = Date.now();
    this.#deadlineTimer = setInterval(() => {
      const now = Date.now();
      if (this.#quotaPaused(now)) this.#quotaPausedMs += now - this.#sweptAt;
      this.#sweptAt = now;
      for (const job of this.#queue.expired(now - this.#quotaPausedMs)) this.#gaveUp(job);
      if (this.#queue.size === 0) {
        clearInterval(this.#deadlineTimer);
        this.#deadlineTimer = undefined;
      }
    }, DEADLINE_SWEEP_MS);
  }

  /** Counts a retry scheduled for a message of this lane (for `stats()`). */
  countDeferred(): void {
    this.#counts.deferred++;
  }

  countFailed(): void {
    this.#counts.failed++;
  }

  async stats(): Promise<LaneStats> {
    const state = await this.#options.limiter.state().catch(() => this.#state);
    const configuredRate = tightestRate(this.#options.spec);
    const now = Date.now();
    const pausedUntil = Math.max(state.pausedUntil, this.#quotaUntil > now ? this.#quotaUntil : 0);
    return {
      provider: this.provider,
      lane: this.name,
      configuredRate,
      effectiveRate: configuredRate === null ? null : configuredRate * state.rateFactor,
      configuredConnections: this.#options.spec.maxConnections,
      effectiveConnections: Math.max(1, Math.floor(state.connections)),
      connections: this.#workers - this.#starting,
      queued: this.#queue.size,
      inFlight: this.#sending + this.#pacing,
      ...this.#counts,
      state: state.stopped ? 'stopped' : pausedUntil > now ? 'paused' : this.#workers > 0 ? 'sending' : 'idle',
      pausedUntil,
    };
  }

  /** Stops taking work, fails what is queued, and closes connections once in-flight sends finish. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#wakeTimer);
    clearInterval(this.#deadlineTimer);
    this.#abort.abort(new Error('lane closed'));
    for (const job of this.#queue.drain()) job.attempt.reject(closedError());
    this.#queue.dispose();
    clearTimeout(this.#idleTimer);
    for (const idle of this.#idle.splice(0)) idle.wake(true);
    while (this.#workers > 0) await sleep(10);
  }

  // Starts a connection when there is work and every open one is busy sending. A connection
  // waiting for a rate slot means the rate binds, not the connection count: no new one then.
  #pump(): void {
    if (this.#closed) return;
    for (let n = Math.min(this.#idle.length, this.#queue.size); n > 0; n--) this.#idle.shift()!.wake(true);
    if (this.#queue.size === 0 || this.#idle.length > 0 || this.#starting > 0 || this.#pacing > 0) return;
    if (this.#state.stopped) return this.#failQueued();
    const now = Date.now();
    const pausedUntil = this.#pausedUntil();
    if (pausedUntil > now) return this.#wakeAt(pausedUntil - now);
    if (this.#workers >= Math.min(this.#options.spec.maxConnections, this.#cap())) return;
    void this.#worker();
  }

  async #worker(): Promise<void> {
    this.#workers++;
    this.#starting++;
    let lease: Lease;
    try {
      lease = await this.#acquire();
    } catch (error) {
      this.#starting--;
      this.#workers--;
      if (!this.#closed) {
        this.#options.onLimiterError(error as Error);
        this.#wakeAt(500);
      }
      return;
    }
    this.#starting--;
    const connection = this.#options.transport.open();
    try {
      for (;;) {
        // A job already waiting is taken without a promise; only an empty line is waited on.
        const job = this.#takeJob() ?? (await this.#nextJob());
        if (!job) break;
        // Paced without waiting when nothing holds it back (no rate window, no pause): no promise then.
        const paced = this.#pace(connection, job);
        const ready = paced instanceof Promise ? await paced : paced;
        if (ready === 'close') break;
        // The connection's sends go on from the transport's callbacks while they can (see #transmit).
        if (ready !== 'keep' && (await this.#transmit(connection, lease, job, ready)) === 'close') break;
        const turn = this.#letLoopTurn();
        if (turn) await turn;
        if (this.#mustGiveBack(lease)) break;
      }
    } finally {
      await connection.close();
      await lease.release().catch((error: Error) => this.#options.onLimiterError(error));
      this.#workers--;
      this.#pump();
    }
  }

  /** A slot of the lane, then one of the provider (never the other way: a provider slot held while waiting for a lane would starve the other lanes). */
  async #acquire(): Promise<Lease> {
    const signal = this.#abort.signal;
    // Waits for Redis in 'wait' mode: close() must still end it.
    if (this.#ready) await Promise.race([this.#ready, new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))]);
    const own = await this.#options.limiter.acquire(signal);
    if (!this.#options.shared) return own;
    try {
      const shared = await this.#options.shared.acquire(signal);
      return {
        id: own.id,
        get lost() {
          return own.lost || shared.lost;
        },
        release: () => Promise.all([shared.release(), own.release()]).then(() => undefined),
      };
    } catch (error) {
      await own.release().catch(() => {});
      throw error;
    }
  }

  /**
   * Lets the event loop turn after SENDS_PER_TURN sends in one turn of it. A send over SMTP waits
   * for the network, so this never waits then; a transport that answers at once (a custom one that
   * calls back synchronously) would otherwise keep timers, I/O and progress events from ever running.
   * It costs one `setImmediate` per turn of the event loop, not one per send.
   */
  #letLoopTurn(): Promise<void> | undefined {
    if (this.#sendsThisTurn++ === 0) {
      setImmediate(() => (this.#sendsThisTurn = 0));
      return undefined;
    }
    if (this.#sendsThisTurn < SENDS_PER_TURN) return undefined;
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Whether this connection may take work now: not closed, stopped or paused (a pause arms the wake-up). */
  #canTake(): boolean {
    if (this.#closed || this.#state.stopped) return false;
    const pausedUntil = this.#pausedUntil();
    if (pausedUntil > Date.now()) {
      this.#wakeAt(pausedUntil - Date.now());
      return false;
    }
    return true;
  }

  /** Until when the lane takes no job: its pause (a reply's, shared) or its wait for its own quota. */
  #pausedUntil(): number {
    return this.#quotaUntil > this.#state.pausedUntil ? this.#quotaUntil : this.#state.pausedUntil;
  }

  /** The next waiting job, if the connection may take one and one waits. */
  #takeJob(): Job | undefined {
    return this.#queue.size > 0 && this.#canTake() ? this.#queue.shift() : undefined;
  }

  async #nextJob(): Promise<Job | undefined> {
    for (;;) {
      if (!this.#canTake()) return undefined;
      const job = this.#queue.shift();
      if (job) return job;
      const woken = await new Promise<boolean>((wake) => {
        this.#idle.push({ since: Date.now(), wake });
        this.#sweepIdle();
      });
      if (!woken) return undefined;
    }
  }

  /** Sends the connections idle for CONNECTION_IDLE_MS away, and sets the timer for the next one. */
  #sweepIdle(): void {
    if (this.#idleTimer) return;
    const now = Date.now();
    while (this.#idle.length > 0 && this.#idle[0]!.since + CONNECTION_IDLE_MS <= now) this.#idle.shift()!.wake(false);
    if (this.#idle.length === 0 || this.#closed) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      this.#sweepIdle();
    }, this.#idle[0]!.since + CONNECTION_IDLE_MS - now);
  }

  /**
   * Readies one attempt on an open connection: its pacing slot (or, on a connection still to open,
   * the gate that books it once the server accepts DATA) and the record of the attempt
   * (`beforeSend`). Returns how to send it, or `'keep'`/`'close'` when the attempt ended here (the
   * job is settled then; `'close'`: this connection must not be used again). Synchronous when
   * nothing makes it wait, as on a lane without rate windows.
   */
  #pace(connection: Connection, job: Job): Ready | Outcome | Promise<Ready | Outcome> {
    this.#settlePauses(job);
    // A send that opens the connection books its slot only once the server has accepted DATA: a
    // slot booked before the handshake would see the message land late, among the sends booked
    // after it (the server counts arrivals).
    if (connection.willConnect()) {
      if (this.#state.stopped) {
        job.attempt.reject(this.#stoppedFailure());
        return 'close';
      }
      return this.#recorded(job, this.#gated(job));
    }
    const booked = this.#slot(job);
    if (typeof booked !== 'number' || booked > 0) return this.#paceLater(job, booked);
    if (this.#state.stopped) {
      job.attempt.reject(this.#stoppedFailure());
      this.#failQueued();
      return 'close';
    }
    return this.#recorded(job, DIRECT);
  }

  /** A gate for a send that opens its connection: it books the slot and waits for it between DATA and the body. */
  #gated(job: Job): Ready {
    const ready: Ready = { gate: undefined, deferred: false };
    ready.gate = async () => {
      this.#pacing++;
      try {
        const waitMs = await this.#slot(job);
        if (this.#state.stopped) throw new Error(`provider ${this.provider} is stopped: ${this.#state.stopped}`);
        if (this.#quotaWait(job, waitMs)) {
          ready.deferred = true;
          throw new Error(`waiting for the quota of lane ${this.name} until ${new Date(job.slotAt!).toISOString()}`);
        }
        await sleep(waitMs, this.#abort.signal);
      } finally {
        this.#pacing--;
      }
    };
    return ready;
  }

  /** `#pace` for a booking that waits: for the limiter (Redis), for its slot, or for a pause. */
  async #paceLater(job: Job, booked: number | Promise<number>): Promise<Ready | Outcome> {
    this.#pacing++;
    try {
      const waitMs = typeof booked === 'number' ? booked : await booked;
      if (this.#state.stopped) {
        job.attempt.reject(this.#stoppedFailure());
        this.#failQueued();
        return 'close';
      }
      if (this.#quotaWait(job, waitMs)) return this.#waitForSlot(job);
      // Paused for longer than a connection should idle (a quota, a named delay): give the
      // connection back and put the message back in line until the pause ends.
      if (this.#state.pausedUntil - Date.now() > CONNECTION_IDLE_MS && waitMs > CONNECTION_IDLE_MS) {
        this.#requeue(job);
        this.#wakeAt(this.#state.pausedUntil - Date.now());
        return 'close';
      }
      if (waitMs > 0) {
        try {
          await sleep(waitMs, this.#abort.signal, job.signal);
        } catch {
          // Closing, or the message's own signal: it has not gone, so it gives up its slot.
          if (this.#abort.signal.aborted) {
            job.attempt.reject(closedError());
            return 'close';
          }
          this.#gaveUp(job);
          return 'keep';
        }
      }
    } catch (error) {
      // The limiter failed (Redis down): the attempt did not happen; the retry loop tries again.
      this.#options.onLimiterError(error as Error);
      job.attempt.reject(new AttemptFailure({ kind: 'transient' }, { lane: this.name, message: `limiter unavailable: ${(error as Error).message}`, cause: error }));
      return 'close';
    } finally {
      this.#pacing--;
    }
    return this.#recorded(job, DIRECT);
  }

  /** The attempt is about to go: counted as sending, and recorded by the caller's `beforeSend` first when it has one. */
  #recorded(job: Job, ready: Ready): Ready | Outcome | Promise<Ready | Outcome> {
    this.#sending++;
    this.#pump();
    return job.attempt.beforeSend ? this.#beforeSend(job, job.attempt.beforeSend, ready) : ready;
  }

  async #beforeSend(job: Job, beforeSend: BeforeSend, ready: Ready): Promise<Ready | Outcome> {
    try {
      await beforeSend(job.signal, job.deadline);
      return ready;
    } catch (error) {
      this.#sending--;
      // The caller called it off (its claim on the message is gone): not a failure of the lane.
      if (isAbortedError(error)) {
        job.attempt.reject(error);
        return 'keep';
      }
      this.#options.onLimiterError(error as Error);
      job.attempt.reject(new AttemptFailure({ kind: 'transient' }, { lane: this.name, message: `could not record the attempt: ${(error as Error).message}`, cause: error }));
      return 'keep';
    }
  }

  /**
   * Sends a readied attempt and settles its job in the transport's callback (the message goes on
   * from there with no promise in between). While the connection's next job can go at once (one
   * waits, its slot needs no wait, nothing calls for a turn of the event loop or for fewer
   * connections), it goes from that callback too: the worker loop sees the connection again when
   * the run ends. Resolves with whether this connection may be used again.
   */
  #transmit(connection: Connection, lease: Lease, job: Job, ready: Ready): Promise<Outcome> {
    return new Promise((resolve) => this.#sendOn(connection, lease, job, ready, resolve));
  }

  #sendOn(connection: Connection, lease: Lease, job: Job, ready: Ready, resolve: (outcome: Outcome | Promise<Outcome>) => void): void {
    connection.send(job.attempt.mail, ready.gate, (error, info) => {
      this.#sending--;
      if (error) {
        // Nothing went out (the body is held back until the gate opens): back in line, with its slot.
        resolve(ready.deferred ? this.#waitForSlot(job) : this.#failed(job, withReply(error, connection.lastReply()), connection.streamed()));
        return;
      }
      this.#counts.sent++;
      try {
        job.attempt.resolve(info as SentMessageInfo);
      } catch (bug) {
        // Not the send's failure (the server took the message): a bug after it, kept loud.
        queueMicrotask(() => {
          throw bug;
        });
      }
      if (this.#state.rateFactor < 1 || this.#state.connections < this.#options.spec.maxConnections) {
        resolve(this.#apply(onSuccess(this.#options.controller)).then(() => 'keep' as const));
        return;
      }
      this.#sendNext(connection, lease, resolve);
    });
  }

  /** The worker loop's next steps after a send, made in the send's callback: the next job goes from here when it can go at once. */
  #sendNext(connection: Connection, lease: Lease, resolve: (outcome: Outcome | Promise<Outcome>) => void): void {
    const turn = this.#letLoopTurn();
    if (turn) return resolve(turn.then(() => 'keep' as const));
    if (this.#mustGiveBack(lease)) return resolve('close');
    const job = this.#takeJob();
    if (!job) return resolve('keep');
    const paced = this.#pace(connection, job);
    if (paced instanceof Promise) return resolve(paced.then((ready) => (typeof ready === 'string' ? ready : this.#transmit(connection, lease, job, ready))));
    if (typeof paced === 'string') return resolve(paced);
    this.#sendOn(connection, lease, job, paced, resolve);
  }

  async #failed(job: Job, error: unknown, streamed: boolean | undefined): Promise<Outcome> {
    const decision = classifySmtpError(error);
    const err = error as { responseCode?: number; response?: string; message?: string };
    const reply = { responseCode: err.responseCode, response: this.#options.redact(err.response || err.message) };
    const { controller, limiter } = this.#options;
    let outcome: 'keep' | 'close' = 'keep';
    switch (decision.kind) {
      case 'rate-limited': {
        const paced = tightestRate(this.#options.spec) !== null;
        if (paced) await this.#throttle('slow-down', decision, reply, onRateLimited(controller));
        // A lane without a pacing window cannot slow its rate down: it pauses for a moment instead.
        if (decision.retryAfterMs || !paced) {
          const ms = decision.retryAfterMs === undefined ? controller.cooldownMs : Math.min(decision.retryAfterMs, this.#options.maxRatePauseMs);
          await this.#throttle('pause', decision, reply, pauseFor(ms, 'retry-after'));
        }
        break;
      }
      case 'connection-limited': {
        // The server refused this connection for having too many open: count what is open now.
        const held = this.#options.transport.ownsConnections ? await limiter.held().catch(() => undefined) : undefined;
        await this.#throttle('fewer-connections', decision, reply, onConnectionLimited(controller, held));
        outcome = 'close';
        break;
      }
      case 'quota-exceeded': {
        const { quotaPauseMs } = this.#options;
        const pause = pauseFor(Math.min(decision.retryAfterMs ?? quotaPauseMs, Math.max(MAX_QUOTA_PAUSE_MS, quotaPauseMs)), 'quota-exceeded');
        await this.#options.shared?.update(pause).catch((error: Error) => this.#options.onLimiterError(error));
        await this.#throttle('pause', decision, reply, pause);
        break;
      }
      case 'auth': {
        // Bad credentials: stop the provider, do not hammer it with every pending message.
        const halt = stop(`authentication failed: ${reply.response ?? 'no reply'}`);
        await this.#options.shared?.update(halt).catch((error: Error) => this.#options.onLimiterError(error));
        await this.#throttle('stop', decision, reply, halt);
        outcome = 'close';
        break;
      }
      default:
        break;
    }
    // No reply after the whole body went out: the server may have taken it (a timeout after the final dot).
    const inDoubt = streamed === true && reply.responseCode === undefined;
    job.attempt.reject(new AttemptFailure(decision, { ...reply, lane: this.name, cause: error, inDoubt, tooManyRecipients: isTooManyRecipients(error) }));
    if (this.#state.stopped) this.#failQueued();
    return outcome;
  }

  async #throttle(action: ThrottleEvent['action'], decision: Decision, reply: { responseCode: number | undefined; response: string | undefined }, transition: StateTransition): Promise<void> {
    const before = this.#state;
    const after = await this.#apply(transition);
    if (after === before || sameState(before, after)) return;
    const rate = tightestRate(this.#options.spec);
    this.#options.onThrottle({
      provider: this.provider,
      lane: this.name,
      action,
      decision: decision.kind,
      responseCode: reply.responseCode,
      response: reply.response,
      rate: rate === null ? Infinity : rate * after.rateFactor,
      connections: Math.max(1, Math.floor(after.connections)),
      pausedUntil: after.pausedUntil,
    });
  }

  async #apply(transition: StateTransition): Promise<AdaptiveState> {
    try {
      this.#state = await this.#options.limiter.update(transition);
    } catch (error) {
      // Keep the slow-down locally at least, so this process does not hammer while Redis is away.
      this.#options.onLimiterError(error as Error);
      this.#state = transition(this.#state, Date.now()) ?? this.#state;
    }
    return this.#state;
  }

  /** The wait for the job's slot: the one it holds (booked before it waited for a quota), or a new booking. */
  #slot(job: Job): number | Promise<number> {
    if (job.slotAt === undefined) return this.#book(job);
    const waitMs = Math.max(0, job.slotAt - Date.now());
    job.slotAt = undefined;
    return waitMs;
  }

  /** Books the job's slot in the lane's windows (and the provider's) and refreshes the lane's state; returns the wait. */
  #book(job: Job): number | Promise<number> {
    if (this.#unpaced) {
      const now = Date.now();
      if (now - this.#stateAt < STATE_REFRESH_MS) return Math.max(0, this.#state.pausedUntil - now);
    }
    return this.#reserve(job);
  }

  async #reserve(job: Job): Promise<number> {
    // A limiter on Redis may make the call wait (Redis away): bounded by the message's deadline too.
    const reservation = await this.#options.limiter.reserve(job.signal, job.deadline);
    const shared = this.#options.shared ? await this.#options.shared.reserve(job.signal, job.deadline) : undefined;
    this.#state = shared ? withProviderState(reservation.state, shared.state) : reservation.state;
    this.#stateAt = Date.now();
    return Math.max(reservation.waitMs, shared?.waitMs ?? 0);
  }

  /** Puts a taken job back at the head of the queue (its signal is watched again). */
  #requeue(job: Job): void {
    this.#queue.unshift(job);
  }

  #failQueued(): void {
    for (const job of this.#queue.drain()) job.attempt.reject(this.#stoppedFailure());
  }

  #stoppedFailure(): AttemptFailure {
    return new AttemptFailure({ kind: 'auth' }, { lane: this.name, message: `provider ${this.provider} is stopped: ${this.#state.stopped}`, response: this.#state.stopped ?? undefined });
  }

  /** What a message that timed out in the queue failed of: the lane's reason for holding it back. */
  #waitDecision(): Decision {
    return this.#quotaPaused(Date.now()) ? { kind: 'quota-exceeded' } : { kind: 'transient' };
  }

  #quotaPaused(now: number): boolean {
    return (this.#state.pausedUntil > now && this.#state.pauseReason === 'quota-exceeded') || this.#quotaUntil > now;
  }

  /**
   * Whether a booking that far out is a wait for the lane's quota: the job then gives its
   * connection back and waits in line with its slot (an SMTP connection is not held open, nor a
   * transaction, for up to a day). A longer wait on a lane without a quota window is the pace's.
   */
  #quotaWait(job: Job, waitMs: number): boolean {
    if (!this.#hasQuota || waitMs <= CONNECTION_IDLE_MS) return false;
    job.slotAt = Date.now() + waitMs;
    if (job.slotAt > this.#quotaUntil) this.#quotaUntil = job.slotAt;
    return true;
  }

  /** Puts a job holding a quota slot back in line until its slot, and gives its connection back. */
  #waitForSlot(job: Job): 'close' {
    this.#requeue(job);
    this.#wakeAt(this.#quotaUntil - Date.now());
    return 'close';
  }

  /** Moves the job's deadline by the quota pauses it waited through in line, and tells its caller. */
  #settlePauses(job: Job): void {
    const paused = job.expires + this.#quotaPausedMs - job.deadline;
    if (!(paused > 0)) return; // NaN for a job without a deadline
    job.deadline += paused;
    job.attempt.paused(paused);
  }

  /** The cap dropped below what is open, or the slot was lost (Redis forgot it): this connection must be given back. */
  #mustGiveBack(lease: Lease): boolean {
    return this.#workers > this.#cap() || lease.lost;
  }

  #cap(): number {
    return Math.max(1, Math.floor(this.#state.connections));
  }

  #wakeAt(ms: number): void {
    if (this.#wakeTimer || this.#closed) return;
    this.#wakeTimer = setTimeout(
      () => {
        this.#wakeTimer = undefined;
        void this.#options.limiter
          .state()
          .then((state) => {
            this.#state = state;
          })
          .catch(() => {})
          .finally(() => this.#pump());
      },
      // Woken early by the cap, the lane finds itself still paused and sets the next wake-up.
      Math.min(MAX_TIMER_MS, Math.max(10, ms)),
    );
  }
}

/** What ends an attempt on a connection: `'close'` when the connection must not be used again. */
type Outcome = 'keep' | 'close';

/** A readied attempt: the gate a send that opens its connection waits at, and whether that gate called the send off for a quota. */
interface Ready {
  gate: (() => Promise<void>) | undefined;
  deferred: boolean;
}

/** An attempt on an open connection with its slot in hand: no gate (never written: only a gate sets `deferred`). */
const DIRECT: Readonly<Ready> = Object.freeze({ gate: undefined, deferred: false });

const noop = () => {};

const closedError = () => new AbortedError('mailer closed before the message was sent', { closed: true });

/**
 * An error without the server's reply (nodemailer lost it when the server closed the connection
 * after a 421) gets the last reply the connection heard, when that was a refusal.
 */
function withReply(error: unknown, lastReply: string | undefined): unknown {
  const err = error as { responseCode?: number; response?: string };
  if (!lastReply || err?.responseCode !== undefined || !/^[45]\d\d[ -]/.test(lastReply)) return error;
  return Object.assign(Object.create(Object.getPrototypeOf(error) as object) as object, error, { responseCode: Number(lastReply.slice(0, 3)), response: lastReply, message: (error as Error).message });
}

/** The lane's state with the provider's pause and stop folded in. */
function withProviderState(lane: AdaptiveState, provider: AdaptiveState): AdaptiveState {
  if (provider.pausedUntil <= lane.pausedUntil && !provider.stopped) return lane;
  return {
    ...lane,
    pausedUntil: Math.max(lane.pausedUntil, provider.pausedUntil),
    pauseReason: provider.pausedUntil > lane.pausedUntil ? provider.pauseReason : lane.pauseReason,
    stopped: lane.stopped ?? provider.stopped,
  };
}

/** The lane's configured pace in sends per second, or `null` when no window paces it. */
function tightestRate(spec: LaneSpec): number | null {
  const rate = paceRate(spec.windows);
  return rate === Infinity ? null : rate;
}

function sameState(a: AdaptiveState, b: AdaptiveState): boolean {
  return a.rateFactor === b.rateFactor && Math.floor(a.connections) === Math.floor(b.connections) && a.pausedUntil === b.pausedUntil && a.stopped === b.stopped;
}
