/**
 * A reply the server sends for a matching recipient, instead of accepting it.
 *
 * @example
 * ```ts
 * { match: 'bad@example.org', code: 550, reply: '550 5.1.1 User unknown' }
 * { match: /@slow\.example$/, code: 450, reply: '450 4.2.1 Mailbox busy', times: 2 }
 * ```
 */
export interface ScriptedReply {
  /**
   * Which recipients the rule applies to: an address (compared case-insensitively),
   * a regular expression tested against the address, or a predicate.
   */
  match: string | RegExp | ((rcpt: string) => boolean);
  /**
   * The reply text. A leading reply code (`'550 '`) is optional and stripped: the
   * code sent is `code`.
   */
  reply: string;
  /** The reply code. A 421 also closes the connection, as RFC 5321 requires. */
  code: number;
  /**
   * How many times the rule fires; once used up, the recipient is handled as if
   * the rule did not exist.
   * @default Infinity
   */
  times?: number;
  /**
   * When the rule answers: the `RCPT TO` of a matching recipient, or the end of
   * `DATA` of a message with at least one matching recipient.
   * @default 'rcpt'
   */
  at?: 'rcpt' | 'data';
}

/** Options of {@link startThrottlingSmtpServer}. Every option is optional. */
export interface ThrottlingSmtpServerOptions {
  /**
   * Concurrent SMTP sessions the server admits. The next one is refused at the greeting
   * with `421 4.7.0 Too many connections, try again later` and closed. (Every greeting comes
   * about 100 ms after the connection opens: smtp-server waits that long to catch clients that
   * talk first.)
   * @default Infinity
   */
  maxConnections?: number;
  /**
   * Accepted messages per window, over a sliding window: a message is refused at the
   * end of `DATA` when `max` messages were already accepted in the last `perMs`
   * milliseconds. Only accepted messages fill the window, so
   * `maxInAnyWindow(perMs) <= max` always holds. A 421 also closes the connection.
   * @default undefined (no limit)
   * @example { max: 10, perMs: 1000 }
   */
  rate?: {
    /** Messages accepted per window. */
    max: number;
    /** Length of the window in milliseconds. */
    perMs: number;
    /**
     * Reply text; a leading code is stripped (the code sent is `code`).
     * @default '421 4.7.0 Rate limit exceeded, slow down'
     */
    reply?: string;
    /**
     * Reply code.
     * @default 421
     */
    code?: 421 | 450 | 451;
  };
  /**
   * Greylisting by recipient address: the first `RCPT TO` of an address, and every
   * one until `delayMs` has passed since that first try, is deferred; later ones are
   * accepted.
   * @default undefined (no greylisting)
   * @example { delayMs: 200 }
   */
  greylist?: {
    /** How long an address stays deferred after its first try, in milliseconds. */
    delayMs: number;
    /**
     * Reply text; its leading code (450 or 451) is the code sent.
     * @default '451 4.7.1 Greylisted, please try again later'
     */
    reply?: string;
  };
  /**
   * Which recipients `greylist` applies to.
   * @default every recipient
   */
  greylistRecipients?: (address: string) => boolean;
  /**
   * Probability (0..1) that a message is refused at the end of `DATA` with
   * `451 4.3.0 Temporary failure, try again`.
   * @default 0
   */
  transientFailureRate?: number;
  /**
   * Probability (0..1) that the server destroys the connection at the end of `DATA`
   * without accepting the message and without a reply.
   * @default 0
   */
  dropConnectionRate?: number;
  /**
   * Probability (0..1) that the server accepts (records) a message and then destroys
   * the connection before the 250 is written: the message arrived but the client saw
   * an error (the in-doubt case).
   * @default 0
   */
  dropAfterAcceptRate?: number;
  /**
   * Scripted replies for given recipients, checked in order before every other rule;
   * the first matching rule that has not used up its `times` answers.
   * @default []
   */
  script?: ScriptedReply[];
  /**
   * Credentials the server requires (AUTH PLAIN or LOGIN, without TLS). Wrong ones get
   * `535 5.7.8 Authentication credentials invalid`. Without this option, AUTH is
   * optional and any credentials are accepted.
   * @default undefined
   */
  auth?: { user: string; pass: string };
  /**
   * Delay before the server answers the end of `DATA`, in milliseconds.
   * @default 0
   */
  latencyMs?: number;
  /**
   * Seed of the generator behind the failure rates, for repeatable runs.
   * @default a random seed
   */
  seed?: number;
}

/** A message the server accepted. */
export interface AcceptedMessage {
  /** When it was accepted (`Date.now()`). */
  at: number;
  /** The `Message-ID` header as sent, with its angle brackets, or `undefined` without one. */
  messageId: string | undefined;
  /** Envelope sender (`''` for the null sender). */
  from: string;
  /** Envelope recipients that were accepted. */
  to: string[];
  /** Message size in bytes, as received after `DATA`. */
  size: number;
  /** Id of the SMTP session that carried it. */
  connectionId: string;
}

/** Counters of {@link ThrottlingSmtpServer.stats}. */
export interface ThrottlingSmtpServerStats {
  /** SMTP sessions admitted and still open. */
  connections: number;
  /** Peak of `connections`. */
  maxConcurrentConnections: number;
  /** Connections refused at the greeting because of `maxConnections`. */
  connectionsRefused: number;
  /** Messages accepted (including those of `inDoubt`). */
  accepted: number;
  /** Refused commands by reply code (AUTH, RCPT TO and end of DATA), e.g. `{ 421: 3, 550: 1 }`. */
  rejected: Record<number, number>;
  /**
   * Every 421 the server's rules sent: connections refused for `maxConnections`, and 421s of `rate`
   * and `script`. Replies smtp-server makes on its own (a timeout, a client that talks before the
   * greeting) are not counted.
   */
  replies421: number;
  /** Connections destroyed by `dropConnectionRate` or `dropAfterAcceptRate`. */
  dropped: number;
  /** Of `dropped`, those whose message was accepted first (`dropAfterAcceptRate`). */
  inDoubt: number;
  /** `RCPT TO` commands deferred by greylisting (a recipient tried three times while greylisted counts three). */
  greylisted: number;
}

/** Lost/duplicate accounting over the accepted messages, by `Message-ID`. */
export interface AcceptedCounts {
  /** Distinct Message-IDs accepted. */
  unique: number;
  /**
   * Deliveries of a Message-ID to a recipient that already had it. A message sent in parts (its
   * recipients split over transactions) is not a duplicate; a single-recipient message accepted
   * twice is one.
   */
  duplicates: number;
  /** Accepted messages without a Message-ID (in neither of the counts above). */
  withoutId: number;
  /** How many transactions carried each Message-ID (a message sent in parts counts each part). */
  byMessageId: Map<string, number>;
}

/** nodemailer SMTP transport options that point at the server. */
export interface ThrottlingSmtpTransportOptions {
  host: string;
  port: number;
  secure: false;
  ignoreTLS: true;
  /** The server's credentials, when it requires them. */
  auth?: { user: string; pass: string };
}

/** A running throttling SMTP server, as returned by {@link startThrottlingSmtpServer}. */
export interface ThrottlingSmtpServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `smtp://127.0.0.1:<port>` */
  readonly url: string;
  /**
   * Options for `nodemailer.createTransport()`, with the credentials when the server
   * requires them.
   * @example nodemailer.createTransport({ ...server.transportOptions(), pool: true })
   */
  transportOptions(): ThrottlingSmtpTransportOptions;
  /** The messages accepted since the start or the last `reset()`, in order. */
  readonly accepted: ReadonlyArray<AcceptedMessage>;
  stats(): ThrottlingSmtpServerStats;
  counts(): AcceptedCounts;
  /**
   * The ids among `expectedIds` that were never accepted, in their order. Ids are
   * compared as Message-IDs, with or without their angle brackets.
   */
  missing(expectedIds: Iterable<string>): string[];
  /**
   * Accepted messages in consecutive windows of `windowMs`, starting at the first
   * acceptance; `[]` when nothing was accepted.
   */
  acceptedPerWindow(windowMs?: number): number[];
  /** The most messages accepted within any `windowMs` (a sliding window over accept times). */
  maxInAnyWindow(windowMs: number): number;
  /**
   * Clears the records and counters and the rate, greylist and script state, as if
   * the server had just started; open connections stay open and counted.
   */
  reset(): void;
  /** Stops the server, destroys open connections and releases the port. */
  close(): Promise<void>;
}
