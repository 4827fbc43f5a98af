import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { freePort } from '../helpers/redis-server.js';
import { startCli, tempDir, type RunningCli } from './helpers.js';

// `mailpacer send` stopped by a signal, as Ctrl-C, `kill` or `docker stop` do it: a child process.

const SUMMARY = /sent (\d+), failed (\d+), skipped (\d+), in doubt (\d+)(?:, not sent yet (\d+))? \((\d+) in the list\)/;

describe('mailpacer send, interrupted', () => {
  const servers: ThrottlingSmtpServer[] = [];
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cli: RunningCli | undefined;
  let files: { config: string; list: string; template: string };

  beforeEach(async () => {
    dir = await tempDir();
    files = { config: join(dir.path, 'config.json'), list: join(dir.path, 'list.csv'), template: join(dir.path, 'news.txt') };
    await writeFile(files.template, 'Subject: News for {{name}}\n\nHello {{name}}\n');
  });
  afterEach(async () => {
    cli?.kill('SIGKILL');
    await cli?.exited;
    cli = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await dir.remove();
  });

  /** A receiver, and the config pointing at it. */
  async function receiver(options: Parameters<typeof startThrottlingSmtpServer>[0], limits: object = {}) {
    const server = await startThrottlingSmtpServer(options);
    servers.push(server);
    await writeFile(files.config, JSON.stringify({ providers: { local: { transport: server.transportOptions(), maxConnections: 2, ...limits } } }));
    return server;
  }
  const list = (n: number) => writeFile(files.list, ['email,name', ...Array.from({ length: n }, (_, i) => `u${i}@example.net,U${i}`)].join('\n'));
  const args = (...extra: string[]) => ['send', '-c', files.config, '--to', files.list, '-t', files.template, '-f', 'news@example.com', '--batch-id', 'b', ...extra];
  const stateLines = async () => (await readFile(join(dir.path, '.mailpacer-b.sent'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  async function until(condition: () => boolean | Promise<boolean>) {
    for (const started = Date.now(); !(await condition()); ) {
      if (Date.now() - started > 20_000) throw new Error('timed out');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('counts the rows it never read as not sent yet: the summary adds up to the list, and a re-run sends the rest once', async () => {
    // More rows than the batch takes in at once (200), so that some are never read.
    const first = await receiver({ latencyMs: 150 });
    await list(260);
    cli = startCli(args());
    await cli.waitFor(/batch b: 260 to send/);
    await until(async () => (await stateLines()).length >= 4);
    cli.kill('SIGINT');
    const result = await cli.exited;
    expect(result.code).toBe(130);
    const [, sent, failed, skipped, inDoubt, notYet, total] = SUMMARY.exec(result.stdout)!.map(Number);
    expect(total).toBe(260);
    expect(sent! + failed! + skipped! + inDoubt! + notYet!).toBe(260);
    expect(notYet).toBeGreaterThan(0);
    expect(first.stats().accepted).toBe(sent);
    expect((await stateLines()).length).toBe(sent);

    const second = await receiver({});
    cli = startCli(args());
    const again = await cli.exited;
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`batch b: ${260 - sent!} to send, ${sent} already sent by an earlier run`);
    const ids = [...first.accepted, ...second.accepted].map((m) => m.to[0]);
    expect(ids).toHaveLength(260);
    expect(new Set(ids).size).toBe(260);
  }, 60_000);

  it('stops cleanly on SIGTERM (kill, docker stop): sends on the wire finish and are recorded, exit status 130', async () => {
    const server = await receiver({ latencyMs: 300 });
    await list(20);
    cli = startCli(args());
    await cli.waitFor(/batch b: 20 to send/);
    await until(async () => (await stateLines()).length >= 2);
    cli.kill('SIGTERM');
    const result = await cli.exited;
    expect(result.stderr).toBe('\nSIGTERM: stopping: letting sends on the wire finish (SIGTERM again to quit at once)\n');
    expect(result.code).toBe(130);
    const sent = Number(SUMMARY.exec(result.stdout)![1]);
    expect(server.stats().accepted).toBe(sent);
    expect((await stateLines()).length).toBe(sent);
    expect(result.stdout).toContain('stopped: run the same command to send the rest');
  }, 60_000);

  it('records the messages on the wire as in doubt when a second signal quits at once, so that a re-run does not send them twice', async () => {
    // The receiver takes each message, then waits 2 s before its 250: the client quits in between.
    const server = await receiver({ latencyMs: 2_000 });
    await list(4);
    cli = startCli(args());
    await cli.waitFor(/batch b: 4 to send/);
    // Both connections open, and their messages' bodies sent (the server is waiting to answer).
    await until(() => server.stats().connections === 2);
    await new Promise((resolve) => setTimeout(resolve, 400));
    cli.kill('SIGTERM');
    await cli.waitFor(/stopping/);
    cli.kill('SIGTERM');
    const result = await cli.exited;
    expect(result.code).toBe(130);
    expect(result.stderr).toMatch(/quitting at once: 2 messages were on the wire, recorded as in doubt in .*\.mailpacer-b\.sent: a re-run reports them and sends them again only with --resend-in-doubt \(which may duplicate them\)/);
    const inDoubt = (await stateLines()).filter((line) => line.startsWith('in-doubt ')).map((line) => line.slice('in-doubt '.length));
    expect(inDoubt).toHaveLength(2);

    cli = startCli(args());
    const again = await cli.exited;
    expect(again.stdout).toContain('batch b: 2 to send, 2 in doubt since an earlier run');
    expect(again.stdout).toContain('sent 2, failed 0, skipped 0, in doubt 2 (4 in the list)');
    expect(again.code).toBe(1);
    // The two the first run left on the wire arrived (after its exit); none arrived twice.
    expect(server.counts()).toMatchObject({ unique: 4, duplicates: 0 });
  }, 60_000);

  it('warns once that Redis is unreachable, and exits 130 on Ctrl-C while it waits for it', async () => {
    await list(2);
    await writeFile(files.config, JSON.stringify({ redis: `redis://127.0.0.1:${await freePort()}`, providers: { local: { transport: { host: '127.0.0.1', port: 9 } } } }));
    cli = startCli(args());
    await cli.waitFor(/warning: Redis is unreachable \(.*\); sends wait for it\n/);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    cli.kill('SIGINT');
    const result = await cli.exited;
    expect(result.stderr.match(/Redis is unreachable/g)).toHaveLength(1);
    expect(result.stderr).not.toContain('Error: interrupted');
    expect(result.stdout).toContain('interrupted before anything was sent');
    expect(result.code).toBe(130);
  }, 30_000);
});
