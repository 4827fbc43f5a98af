import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const CLI = join(ROOT, 'src/cli/index.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `mailpacer <args>` from the sources, as `npx tsx src/cli/index.ts` does. */
export function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(TSX, [CLI, ...args], { cwd: ROOT, timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

/** A running `mailpacer <args>`: its output so far, a wait for a line of it, signals, its end. */
export interface RunningCli {
  stdout: () => string;
  stderr: () => string;
  /** Resolves once stdout or stderr matches (rejects after `timeoutMs`, or when the command ended without it). */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>;
  kill: (signal: NodeJS.Signals) => void;
  /** The exit status (128 + the signal's number if a signal ended it). */
  exited: Promise<CliResult>;
}

/** Starts `mailpacer <args>` from the sources, for tests that signal it while it runs. */
export function startCli(args: readonly string[]): RunningCli {
  // Its own process group, so that SIGKILL (a cleanup) reaches the node process tsx started too.
  const child = spawn(TSX, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<CliResult>((done) => {
    child.on('close', (code, signal) => done({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout, stderr }));
  });
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    async waitFor(pattern, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      while (!pattern.test(stdout) && !pattern.test(stderr)) {
        if (Date.now() > until || child.exitCode !== null) throw new Error(`no ${pattern} in the output:\n${stdout}\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    // tsx passes SIGINT and SIGTERM on to the command; a signal to the group would reach it twice.
    kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (signal !== 'SIGKILL') return void child.kill(signal);
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // The group is gone already.
      }
    },
    exited,
  };
}

/** A fresh directory under the OS temp dir, and its removal. */
export async function tempDir(): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'mailpacer-cli-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * A TCP relay in front of an SMTP server that keeps what clients send: the test server records
 * Message-IDs, not bodies, and the tests want to read the rendered text as it went out.
 */
export async function startTap(targetPort: number): Promise<{ port: number; text: () => string; close: () => Promise<void> }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    text: () => Buffer.concat(chunks).toString('utf8'),
    close: () =>
      new Promise<void>((closed) => {
        for (const s of sockets) s.destroy();
        server.close(() => closed());
      }),
  };
}
