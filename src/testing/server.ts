import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';
import { scanMessage, type ScannedMessage } from './message.js';
import { Greylist, mulberry32, parseReply, Script, SlidingLog, validateOptions, type Reply } from './policy.js';
import { countByMessageId, countPerWindow, maxInWindow, missingIds } from './records.js';
import type {
  AcceptedMessage,
  ThrottlingSmtpServer,
  ThrottlingSmtpServerOptions,
  ThrottlingSmtpServerStats,
  ThrottlingSmtpTransportOptions,
} from './types.js';

const HOST = '127.0.0.1';
const TOO_MANY_CONNECTIONS: Reply = { code: 421, text: '4.7.0 Too many connections, try again later' };
const TRANSIENT_FAILURE: Reply = { code: 451, text: '4.3.0 Temporary failure, try again' };
const BAD_CREDENTIALS: Reply = { code: 535, text: '5.7.8 Authentication credentials invalid' };
const DEFAULT_RATE_REPLY = '421 4.7.0 Rate limit exceeded, slow down';
const DEFAULT_GREYLIST_REPLY = '451 4.7.1 Greylisted, please try again later';

/** smtp-server sends `err.responseCode` and `err.message` as the reply line, and closes after a 421. */
type ReplyError = Error & { responseCode: number };

type Counters = Omit<ThrottlingSmtpServerStats, 'connections' | 'rejected'>;

/**
 * Starts a real SMTP server on a random loopback port that behaves like a throttling
 * receiver: connection cap, rate limit, greylisting, random failures and drops, and
 * scripted replies. It records what it accepts, for lost/duplicate counts.
 *
 * @example
 * ```ts
 * const server = await startThrottlingSmtpServer({ maxConnections: 2, rate: { max: 10, perMs: 1000 } });
 * const transport = nodemailer.createTransport({ ...server.transportOptions(), pool: true });
 * // ... send, then:
 * expect(server.counts().duplicates).toBe(0);
 * await server.close();
 * ```
 */
export async function startThrottlingSmtpServer(options: ThrottlingSmtpServerOptions = {}): Promise<ThrottlingSmtpServer> {
  validateOptions(options);
  const receiver = new Receiver(options);
  await receiver.listen();
  return receiver.handle();
}

class Receiver {
  readonly #options: ThrottlingSmtpServerOptions;
  readonly #smtp: SMTPServer;
  readonly #random: () => number;
  readonly #rate: { log: SlidingLog; reply: Reply } | undefined;
  readonly #greylist: { list: Greylist; reply: Reply } | undefined;
  readonly #script: Script;
  /** Sessions admitted at the greeting and not closed yet, by session id. */
  readonly #sessions = new Set<string>();
  /** Every accepted socket by `address:port`, to drop one and to force the close. */
  readonly #sockets = new Map<string, Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #accepted: AcceptedMessage[] = [];
  #rejected: Record<number, number> = {};
  #counters: Counters = zeroCounters();
  #port = 0;
  #closing: Promise<void> | undefined;

  constructor(options: ThrottlingSmtpServerOptions) {
    this.#options = options;
    this.#random = mulberry32(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    const { rate, greylist } = options;
    this.#rate = rate && { log: new SlidingLog(rate.max, rate.perMs), reply: parseReply(rate.reply ?? DEFAULT_RATE_REPLY, rate.code ?? 421, 421) };
    this.#greylist = greylist && { list: new Greylist(greylist.delayMs), reply: parseReply(greylist.reply ?? DEFAULT_GREYLIST_REPLY, undefined, 451) };
    this.#script = new Script(options.script ?? []);
    this.#smtp = new SMTPServer({
      name: 'mailpacer.test',
      secure: false,
      logger: false,
      disabledCommands: ['STARTTLS'],
      hideSTARTTLS: true,
      allowInsecureAuth: true,
      authOptional: options.auth === undefined,
      authMethods: ['PLAIN', 'LOGIN'],
      // A reverse lookup of 127.0.0.1 per connection is slow and tells a test nothing.
      disableReverseLookup: true,
      closeTimeout: 1_000,
      onConnect: (session, callback) => this.#onConnect(session, callback),
      onClose: (session) => this.#sessions.delete(session.id),
      onAuth: (auth, _session, callback) => this.#onAuth(auth, callback),
      onRcptTo: (address, _session, callback) => callback(this.#onRcptTo(address.address)),
      onData: (stream, session, callback) =>
        scanMessage(stream, (err, message) => {
          if (err || !message) return callback(err);
          this.#later(this.#options.latencyMs ?? 0, () => this.#onDataEnd(message, session, callback));
        }),
    });
    // Connection errors (a client resetting mid-transaction) are the client's business.
    this.#smtp.on('error', () => {});
    this.#smtp.server.on('connection', (socket: Socket) => {
      const key = socketKey(socket.remoteAddress, socket.remotePort);
      this.#sockets.set(key, socket);
      socket.once('close', () => this.#sockets.delete(key));
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = this.#smtp.server;
      server.once('error', reject);
      this.#smtp.listen(0, HOST, () => {
        server.off('error', reject);
        const address = server.address();
        this.#port = typeof address === 'object' && address ? address.port : 0;
        resolve();
      });
    });
  }

  #onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const max = this.#options.maxConnections;
    if (max !== undefined && this.#sessions.size >= max) {
      this.#counters.connectionsRefused++;
      this.#counters.replies421++;
      // smtp-server writes the reply to the greeting and closes the connection.
      return callback(replyError(TOO_MANY_CONNECTIONS));
    }
    this.#sessions.add(session.id);
    this.#counters.maxConcurrentConnections = Math.max(this.#counters.maxConcurrentConnections, this.#sessions.size);
    callback();
  }

  #onAuth(auth: SMTPServerAuthentication, callback: (err: Error | null | undefined, response?: { user: string }) => void): void {
    const expected = this.#options.auth;
    if (expected && (auth.username !== expected.user || auth.password !== expected.pass)) {
      return callback(this.#refuse(BAD_CREDENTIALS));
    }
    callback(null, { user: auth.username ?? 'anonymous' });
  }

  #onRcptTo(address: string): Error | undefined {
    const scripted = this.#script.fire('rcpt', [address]);
    if (scripted) return this.#refuse(scripted);
    const greylist = this.#greylist;
    const filter = this.#options.greylistRecipients;
    if (greylist && (!filter || filter(address)) && greylist.list.defers(address, Date.now())) {
      this.#counters.greylisted++;
      return this.#refuse(greylist.reply);
    }
    return undefined;
  }

  /** Decides about a message received in full: refuse, drop, or accept (and maybe drop). */
  #onDataEnd(message: ScannedMessage, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    if (this.#closing) return;
    const { mailFrom, rcptTo } = session.envelope;
    const to = rcptTo.map((rcpt) => rcpt.address);
    const scripted = this.#script.fire('data', to);
    if (scripted) return callback(this.#refuse(scripted));
    if (this.#chance(this.#options.transientFailureRate)) return callback(this.#refuse(TRANSIENT_FAILURE));
    if (this.#chance(this.#options.dropConnectionRate)) return this.#drop(session, callback);
    const now = Date.now();
    if (this.#rate && !this.#rate.log.admits(now)) return callback(this.#refuse(this.#rate.reply));
    this.#rate?.log.record(now);
    this.#accepted.push({
      at: now,
      messageId: message.messageId,
      from: mailFrom ? mailFrom.address : '',
      to,
      size: message.size,
      connectionId: session.id,
    });
    this.#counters.accepted++;
    if (this.#chance(this.#options.dropAfterAcceptRate)) {
      this.#counters.inDoubt++;
      return this.#drop(session, callback);
    }
    callback();
  }

  /** Destroys the session's socket before any reply; the callback then writes nothing. */
  #drop(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    this.#counters.dropped++;
    this.#sockets.get(socketKey(session.remoteAddress, session.remotePort))?.destroy();
    callback(new Error('connection dropped'));
  }

  #refuse(reply: Reply): ReplyError {
    this.#rejected[reply.code] = (this.#rejected[reply.code] ?? 0) + 1;
    if (reply.code === 421) this.#counters.replies421++;
    return replyError(reply);
  }

  #chance(probability: number | undefined): boolean {
    return probability !== undefined && probability > 0 && this.#random() < probability;
  }

  #later(delayMs: number, run: () => void): void {
    if (delayMs <= 0) return run();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, delayMs);
    this.#timers.add(timer);
  }

  #stats(): ThrottlingSmtpServerStats {
    return { connections: this.#sessions.size, ...this.#counters, rejected: { ...this.#rejected } };
  }

  #reset(): void {
    this.#accepted = [];
    this.#rejected = {};
    this.#counters = { ...zeroCounters(), maxConcurrentConnections: this.#sessions.size };
    this.#rate?.log.clear();
    this.#greylist?.list.clear();
    this.#script.clear();
  }

  #close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
      // smtp-server's close() waits up to closeTimeout for sessions to end; a pooled
      // client keeps its session open, so the sockets are destroyed right away.
      this.#smtp.close(() => resolve());
      for (const socket of this.#sockets.values()) socket.destroy();
    });
    return this.#closing;
  }

  handle(): ThrottlingSmtpServer {
    const port = this.#port;
    const auth = this.#options.auth;
    // The getter below runs with the handle as `this`; `accepted` is replaced by reset().
    const receiver = this;
    return {
      host: HOST,
      port,
      url: `smtp://${HOST}:${port}`,
      transportOptions: (): ThrottlingSmtpTransportOptions => ({
        host: HOST,
        port,
        secure: false,
        ignoreTLS: true,
        ...(auth && { auth: { user: auth.user, pass: auth.pass } }),
      }),
      get accepted() {
        return receiver.#accepted;
      },
      stats: () => this.#stats(),
      counts: () => countByMessageId(this.#accepted),
      missing: (expectedIds) => missingIds(this.#accepted, expectedIds),
      acceptedPerWindow: (windowMs = 1000) => countPerWindow(this.#times(), windowMs),
      maxInAnyWindow: (windowMs) => maxInWindow(this.#times(), windowMs),
      reset: () => this.#reset(),
      close: () => this.#close(),
    };
  }

  #times(): number[] {
    return this.#accepted.map((message) => message.at);
  }
}

function zeroCounters(): Counters {
  return { maxConcurrentConnections: 0, connectionsRefused: 0, accepted: 0, replies421: 0, dropped: 0, inDoubt: 0, greylisted: 0 };
}

function replyError(reply: Reply): ReplyError {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/** smtp-server reports IPv4 peers without the `::ffff:` prefix; raw sockets may carry it. */
function socketKey(address: string | undefined, port: number | undefined): string {
  return `${(address ?? '').replace(/^::ffff:/i, '').toLowerCase()}:${port ?? 0}`;
}
