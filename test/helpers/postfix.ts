import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

export const POSTFIX = '/usr/sbin/postfix';

/**
 * Whether a Postfix instance of our own can be started here: Debian's postfix package installed
 * (`apt-get install -y postfix`) and root (its master process must start as root).
 */
export function postfixAvailable(): boolean {
  return existsSync(POSTFIX) && process.getuid?.() === 0 && userExists('postfix');
}

function userExists(name: string): boolean {
  return spawnSync('id', ['-u', name], { stdio: 'ignore' }).status === 0;
}

export interface PostfixLimits {
  /** `smtpd_client_connection_count_limit`: connections at once from one client (0: none). */
  connections?: number;
  /** `smtpd_client_message_rate_limit`: messages per `anvil_rate_time_unit` from one client (0: none). */
  messagesPerUnit?: number;
  /** `anvil_rate_time_unit`, in seconds. @default 60 */
  unitSeconds?: number;
  /** `check_recipient_access` entries: recipient address → reply (`'550 5.1.1 No such user'`). */
  recipientReplies?: Record<string, string>;
}

export interface PostfixServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The instance's log (`maillog_file`, written by its postlogd). */
  log(): string;
  /**
   * What Postfix delivered (to its `discard` transport), read from its log: for each Message-ID
   * header, how many queue files with that header reached `status=sent`.
   */
  delivered(): Map<string, number>;
  /** Waits until `count` messages are delivered, or `timeoutMs` passes; returns what was delivered. */
  waitForDelivered(count: number, timeoutMs?: number): Promise<Map<string, number>>;
  /** Stops the instance (`postfix stop`, then its master by PID if it is still there) and removes its directory. */
  stop(): Promise<void>;
}

/**
 * A real Postfix 3 (smtpd, cleanup, qmgr, anvil) of its own, in a fresh directory: it listens on
 * 127.0.0.1 on a free port, relays for 127.0.0.0/8, and hands every accepted message to its
 * `discard` transport, so nothing leaves the machine. Its anvil limits apply to 127.0.0.1 too
 * (`smtpd_client_event_limit_exceptions` is emptied; by default they exempt `$mynetworks`).
 */
export async function startPostfix(limits: PostfixLimits = {}): Promise<PostfixServer> {
  if (!postfixAvailable()) throw new Error(`Postfix cannot be started here: needs ${POSTFIX} (apt-get install -y postfix) and root (uid is ${process.getuid?.()}, user ${userInfo().username})`);
  const port = await freePort();
  // Postfix's own processes (user postfix) must reach the queue directory under it.
  const dir = mkdtempSync('/tmp/mailpacer-postfix-');
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  const logFile = join(dir, 'maillog');
  for (const d of [etc, queue, data]) mkdirSync(d);
  const postfixUid = Number(spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).stdout.trim());
  chownSync(data, postfixUid, -1);
  const name = `postfix-mailpacer-${port}`;
  const replies = Object.entries(limits.recipientReplies ?? {});
  const restrictions = replies.length ? `check_recipient_access inline:{ ${replies.map(([address, reply]) => `{ ${address} = ${reply} }`).join(', ')} }, ` : '';
  writeFileSync(
    join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = mx.mailpacer.test',
      'mydomain = mailpacer.test',
      'inet_interfaces = loopback-only',
      'inet_protocols = ipv4',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      `smtpd_relay_restrictions = ${restrictions}permit_mynetworks, reject`,
      'default_transport = discard:mailpacer test',
      'relay_transport = discard:mailpacer test',
      'local_transport = discard:mailpacer test',
      'virtual_transport = discard:mailpacer test',
      `maillog_file = ${logFile}`,
      `maillog_file_prefixes = ${dir}`,
      `syslog_name = ${name}`,
      'alias_maps =',
      'alias_database =',
      'smtpd_client_event_limit_exceptions =',
      `smtpd_client_connection_count_limit = ${limits.connections ?? 0}`,
      `smtpd_client_message_rate_limit = ${limits.messagesPerUnit ?? 0}`,
      `anvil_rate_time_unit = ${limits.unitSeconds ?? 60}s`,
      '',
    ].join('\n'),
  );
  // The services an smtpd that relays to discard needs, none chrooted.
  writeFileSync(
    join(etc, 'master.cf'),
    [
      `127.0.0.1:${port} inet n - n - - smtpd`,
      'cleanup unix n - n - 0 cleanup',
      'qmgr unix n - n 300 1 qmgr',
      'rewrite unix - - n - - trivial-rewrite',
      'bounce unix - - n - 0 bounce',
      'defer unix - - n - 0 bounce',
      'trace unix - - n - 0 bounce',
      'verify unix - - n - 1 verify',
      'proxymap unix - - n - - proxymap',
      'showq unix n - n - - showq',
      'error unix - - n - - error',
      'retry unix - - n - - error',
      'discard unix - - n - - discard',
      'anvil unix - - n - 1 anvil',
      'scache unix - - n - 1 scache',
      'postlog unix-dgram n - n - 1 postlogd',
      '',
    ].join('\n'),
  );
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const run = (command: string) => spawnSync(POSTFIX, ['-c', etc, command], { encoding: 'utf8' });
  const started = run('start');
  if (started.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postfix start failed (exit ${started.status}): ${started.stderr.trim() || log().trim() || 'no output'}`);
  }
  const delivered = () => {
    const ids = new Map<string, string>(); // queue id → Message-ID
    const counts = new Map<string, number>();
    for (const line of log().split('\n')) {
      const header = / ([0-9A-F]+): message-id=<([^>]*)>/.exec(line);
      if (header) ids.set(header[1]!, header[2]!);
      const sent = / ([0-9A-F]+): to=<[^>]*>.* status=sent /.exec(line);
      if (sent) {
        const id = ids.get(sent[1]!) ?? `(queue file ${sent[1]} without a Message-ID)`;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    return counts;
  };
  const server: PostfixServer = {
    host: '127.0.0.1',
    port,
    log,
    delivered,
    async waitForDelivered(count, timeoutMs = 15_000) {
      for (const until = Date.now() + timeoutMs; Date.now() < until; await pause(100)) {
        const now = delivered();
        if ([...now.values()].reduce((a, b) => a + b, 0) >= count) return now;
      }
      return delivered();
    },
    async stop() {
      const pidFile = join(queue, 'pid', 'master.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
      run('stop');
      for (let waited = 0; pid && alive(pid) && waited < 5_000; waited += 50) await pause(50);
      if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await listening(port);
  } catch (error) {
    await server.stop();
    throw new Error(`postfix did not listen on 127.0.0.1:${port}: ${(error as Error).message}; its log: ${log().trim()}`);
  }
  return server;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until something accepts TCP connections on the port (the master listens for smtpd). */
async function listening(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
      socket.setTimeout(1_000, () => done(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens after ${timeoutMs} ms`);
    await pause(50);
  }
}
