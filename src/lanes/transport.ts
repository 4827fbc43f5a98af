import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { SendMailOptions, SentMessageInfo, SMTPPoolOptions, Transport, Transporter } from 'nodemailer';
import { collectSecrets, createRedactor } from '../redact.js';

/** One connection slot's way to send: a single pooled SMTP connection, or a shared custom transport. */
export interface Connection {
  /**
   * Sends one message and calls `done` once, with the error or nodemailer's info (never before
   * `send` returns). One at a time: the next `send` only after `done` was called. `gate`, when
   * given, is awaited once the server has accepted DATA and before the body goes out: a pacing
   * slot taken then is not delayed by opening the connection.
   */
  send(mail: SendMailOptions, gate: (() => Promise<void>) | undefined, done: SendCallback): void;
  /**
   * Whether the last `send()` handed the whole message to the server (DATA accepted, body streamed)
   * before it failed: a failure without a reply after that leaves the outcome unknown (in doubt).
   * `undefined` when the transport cannot tell.
   */
  streamed(): boolean | undefined;
  /** The server's last reply during the last `send()`, when the transport can tell. */
  lastReply(): string | undefined;
  /**
   * Whether the next `send()` opens a new connection first (TCP, greeting, EHLO, TLS, AUTH): its
   * pacing slot is then booked once the server accepts DATA (the `gate`). After a failed send it is
   * `false` whether or not the connection survived: the next send is paced before it goes.
   */
  willConnect(): boolean;
  /** Closes the connection; resolves once its socket is gone (so that its slot can be reused). */
  close(): Promise<void>;
}

/** How a connection reports one send: a callback, not a promise (one promise fewer per message on the hot path). */
export type SendCallback = (error: unknown, info?: SentMessageInfo) => void;

export interface TransportFactory {
  /** Whether `open()` makes a real connection of its own (SMTP) or shares one transport (custom). */
  readonly ownsConnections: boolean;
  open(): Connection;
  close(): void;
}

export type TransportInput = string | Record<string, unknown> | Transporter | Transport;

/**
 * SMTP options become one pooled transport per connection slot (`maxConnections: 1`), so that a
 * lease is exactly one open connection and the fleet's connection cap is the server's view too.
 * nodemailer's own pacing and requeueing stay off: a requeue after a dropped connection could send
 * a message twice, and retry happens in one place.
 */
export function createTransportFactory(input: TransportInput, maxMessagesPerConnection: number): TransportFactory {
  if (typeof input === 'object' && input !== null && typeof (input as Transporter).sendMail === 'function') {
    return shared(input as Transporter, false);
  }
  if (typeof input === 'object' && input !== null && typeof (input as Transport).send === 'function') {
    try {
      return shared(nodemailer.createTransport(input as Transport), true);
    } catch (error) {
      const connection = unusable(error, input);
      return { ownsConnections: false, open: () => connection, close() {} };
    }
  }
  const base = (typeof input === 'string' ? { url: input } : input) as Record<string, unknown>;
  return {
    ownsConnections: true,
    open() {
      // Up to 20% fewer at random, so that a lane's connections are not all replaced at once (the
      // handshakes would delay a bunch of paced sends into the same second).
      const maxMessages = Math.max(1, Math.round(maxMessagesPerConnection * (0.8 + 0.2 * Math.random())));
      // Sends on the current connection: the pool replaces it after maxMessages, or after a failure.
      let onThisConnection = 0;
      const options = { ...base, pool: true, maxConnections: 1, maxMessages, maxRequeues: 0 } as SMTPPoolOptions & { pool: true };
      let transporter: Transporter;
      try {
        // A URL WHATWG refuses would make nodemailer fall back to url.parse, whose deprecation
        // warning prints it (password included) to stderr, and then throw: refused here first.
        if (typeof base.url === 'string') new URL(base.url);
        transporter = nodemailer.createTransport(options);
      } catch (error) {
        // nodemailer reads its options here and throws at once on ones it cannot use: an exception
        // out of open() would end the lane's worker, and the process with it.
        return unusable(error, input);
      }
      let replies = watchReplies(transporter);
      if (!replies && base.logger === undefined && base.transactionLog === undefined) {
        // A nodemailer whose pool is built differently: hear the replies through its transaction log.
        transporter.close();
        let heard: string | undefined;
        transporter = nodemailer.createTransport({ ...options, transactionLog: true, logger: replyListener((reply) => (heard = reply)) });
        replies = { mark: () => void (heard = undefined), since: () => heard };
      }
      const dispatch = dispatcher(transporter);
      // One message at a time goes through this connection, so one flag tells its stage. The
      // message stream is read only after the server's 354; its end means the body went out.
      let streamed = false;
      let gate: (() => Promise<void>) | undefined;
      transporter.use('stream', (mail, done) => {
        const waitFor = gate;
        mail.message.processFunc((input) => {
          input.once('end', () => {
            streamed = true;
          });
          return waitFor ? gated(input, waitFor) : input;
        });
        done();
      });
      // One message at a time: the send in progress's callback, and whether send() is still running.
      let pending: SendCallback | undefined;
      let inSend = false;
      // Whether the last send failed. nodemailer keeps the connection after a refused envelope and
      // closes it after most other failures, so the next send may or may not connect first; it is
      // paced before it goes either way (willConnect() says no): a server that counts MAIL FROMs,
      // refused ones included (Postfix's anvil), would otherwise get each send after a refusal at
      // once, as on a new connection, whose slot is booked only when DATA is accepted.
      let failed = false;
      const sent = (error: Error | null, info?: SentMessageInfo) => {
        const done = pending;
        if (!done) return;
        pending = undefined;
        failed = Boolean(error);
        if (error) onThisConnection = 0; // the connection may be gone: count from a new one
        // A callback made before sendMail returned (a plugin that fails at once) waits for it:
        // the caller's bookkeeping is done only once send() returns.
        if (inSend) queueMicrotask(() => done(error, info));
        else done(error, info);
      };
      return {
        send: (mail, sendGate, done) => {
          gate = sendGate;
          streamed = false;
          replies?.mark();
          onThisConnection = onThisConnection >= maxMessages ? 1 : onThisConnection + 1;
          pending = done;
          inSend = true;
          // nodemailer's callback form: it makes no promise of its own then.
          try {
            transporter.sendMail(mail, sent);
            dispatch?.();
          } catch (error) {
            sent(error as Error);
          } finally {
            inSend = false;
          }
        },
        willConnect: () => !failed && (onThisConnection === 0 || onThisConnection >= maxMessages),
        streamed: () => streamed,
        lastReply: () => replies?.since(),
        close: () => closed(transporter),
      };
    },
    close() {},
  };
}

/**
 * A connection whose transport could not be made: each send fails with nodemailer's `ECONFIG`
 * (permanent: it fails the same way every time). The error is a new one, its message redacted and
 * without `cause`: the one thrown may carry the options (a `TypeError` from parsing a URL holds
 * the whole URL, password included, in `input`).
 */
function unusable(thrown: unknown, input: TransportInput): Connection {
  const redact = createRedactor(collectSecrets(input));
  const why = thrown instanceof Error ? thrown.message : String(thrown);
  const message = `could not create the nodemailer transport: ${redact(why.replace(/[a-z][a-z0-9+.-]*:\/\/\S*/gi, '[url]'))}`;
  return {
    send: (_mail, _gate, done) => queueMicrotask(() => done(Object.assign(new Error(message), { code: 'ECONFIG' }))),
    streamed: () => false,
    lastReply: () => undefined,
    willConnect: () => false,
    close: async () => {},
  };
}

function shared(transporter: Transporter, ours: boolean): TransportFactory {
  return {
    ownsConnections: false,
    // The promise form: a transporter from elsewhere may not take a callback.
    open: () => ({ send: (mail, _gate, done) => void new Promise<SentMessageInfo>((resolve) => resolve(transporter.sendMail(mail))).then((info) => done(null, info), done), streamed: () => undefined, lastReply: () => undefined, willConnect: () => false, close: async () => {} }),
    close() {
      if (ours) transporter.close();
    },
  };
}

/**
 * Closes a pooled transporter and waits until its socket is gone: QUIT and the server's 221 take a
 * round trip, and a slot released before that lets another process open a connection while the
 * server still counts this one. nodemailer's pool says nothing when it is done, so its connection
 * list is watched (bounded: a pool without one just waits the bound out).
 */
async function closed(transporter: Transporter): Promise<void> {
  transporter.close();
  const pool = poolOf(transporter);
  for (let waited = 0; waited < CLOSE_WAIT_MS; waited += 10) {
    if (pool?._connections && pool._connections.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const CLOSE_WAIT_MS = 1_000;

/**
 * Hands a message that reached the pool's queue to its connection now. The pool does that on the
 * next turn of the event loop (`setImmediate`), which costs every message a turn when, as here, the
 * pool holds one connection that takes one message at a time. Its queue is filled synchronously by
 * `sendMail` (the plugins mailpacer adds answer at once; a user plugin that answers later leaves
 * the queue empty, and the pool's own turn sends it). `undefined` when the pool has no such seam.
 */
function dispatcher(transporter: Transporter): (() => void) | undefined {
  const pool = poolOf(transporter);
  if (!pool || !Array.isArray(pool._queue) || typeof pool._processMessages !== 'function') return undefined;
  return () => {
    if (pool._queue!.length > 0) pool._processMessages!();
  };
}

interface Replies {
  /** Remembers where the connection stands: a send starts. */
  mark(): void;
  /** The server's last reply since `mark()`, if one came. */
  since(): string | undefined;
}

type PoolResource = { connection?: { lastServerResponse?: string | false } };

/** The parts of nodemailer's SMTP pool (not public API) that mailpacer reaches, each checked before use. */
interface Pool {
  _queue?: unknown[];
  _processMessages?: () => void;
  _createConnection?: (...args: unknown[]) => PoolResource;
  _connections?: unknown[];
}

/** The SMTP pool behind a pooled transporter, if it is one. */
function poolOf(transporter: Transporter): Pool | undefined {
  return (transporter as unknown as { transporter?: Pool }).transporter;
}

/**
 * The server's last reply on a pooled transporter's connection. A 421 to RCPT on a reused pooled
 * connection reaches the caller as a bare "connection closed" error: the pool drops the error
 * that carries the reply, which says why (rate, connections). The SMTP connection still holds it
 * (`lastServerResponse`), so the pool's connections are kept track of as it makes them (one at a
 * time here). `undefined` when the pool has no such seam (then the transaction log is read).
 */
function watchReplies(transporter: Transporter): Replies | undefined {
  const pool = poolOf(transporter);
  const create = pool?._createConnection;
  if (!pool || typeof create !== 'function') return undefined;
  let current: PoolResource | undefined;
  pool._createConnection = function (this: Pool, ...args: unknown[]) {
    current = create.apply(this, args);
    return current;
  };
  let markedOn: PoolResource | undefined;
  let markedReply: string | false | undefined;
  return {
    mark() {
      markedOn = current;
      markedReply = current?.connection?.lastServerResponse;
    },
    since() {
      const reply = current?.connection?.lastServerResponse;
      if (typeof reply !== 'string' || (current === markedOn && reply === markedReply)) return undefined;
      return reply;
    },
  };
}

const noop = () => {};

/** A nodemailer logger that hears the server's replies (the `tnx: 'server'` lines) and nothing else. */
function replyListener(onReply: (reply: string) => void) {
  return {
    trace: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    debug(entry: { tnx?: string } | undefined, message: unknown) {
      if (entry?.tnx === 'server' && typeof message === 'string') onReply(message);
    },
  };
}

/**
 * The message body, held back until `gate` resolves: the body is first read after the server's 354,
 * so the wait falls between DATA and the body, on an open connection. A gate that fails fails the
 * send (the body never went out).
 */
function gated(input: Readable, gate: () => Promise<void>): Readable {
  let opened = false;
  const output = new Readable({
    read() {
      if (opened) return void input.resume();
      opened = true;
      gate().then(
        () => {
          input.on('data', (chunk) => {
            if (!output.push(chunk)) input.pause();
          });
          input.once('end', () => output.push(null));
        },
        (error: unknown) => output.destroy(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
  input.once('error', (error) => output.destroy(error));
  return output;
}
