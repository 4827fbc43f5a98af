import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/cli/csv.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { runCli, startTap, tempDir } from './helpers.js';

const LIST = [
  'email,name,plan',
  'ann@example.org,"Smith, Ann",gold',
  'bob@example.org,Bob,"silver ""plus"""',
  'cy@example.org,Cy,bronze',
  'di@example.org,Di,gold',
  'ed@example.org,Ed,free',
].join('\r\n');

const TEMPLATE = 'Subject: Hello {{name}}\n\nDear {{name}},\nyour plan: {{plan}}.\n';

describe('mailpacer send', () => {
  let server: ThrottlingSmtpServer;
  let tap: Awaited<ReturnType<typeof startTap>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let files: { config: string; list: string; template: string };

  async function setUp(options: Parameters<typeof startThrottlingSmtpServer>[0] = {}) {
    server = await startThrottlingSmtpServer(options);
    tap = await startTap(server.port);
    const transport = { ...server.transportOptions(), port: tap.port };
    files = { config: join(dir.path, 'mailpacer.config.json'), list: join(dir.path, 'list.csv'), template: join(dir.path, 'newsletter.txt') };
    await writeFile(files.config, JSON.stringify({ providers: { local: { transport, rate: { max: 50, per: '1s' }, maxConnections: 2 } }, retry: { minDelay: '20ms', maxDelay: '100ms' } }));
    await writeFile(files.list, LIST);
    await writeFile(files.template, TEMPLATE);
  }

  const send = (...extra: string[]) => runCli(['send', '--config', files.config, '--to', files.list, '--template', files.template, '--from', 'News <news@example.com>', ...extra]);

  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await tap?.close();
    await server?.close();
    await dir.remove();
  });

  it('sends one rendered message per row', async () => {
    await setUp();
    const result = await send('--batch-id', 'nov');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('sent 5, failed 0, skipped 0, in doubt 0');
    expect(server.accepted.flatMap((m) => m.to).sort()).toEqual(['ann@example.org', 'bob@example.org', 'cy@example.org', 'di@example.org', 'ed@example.org']);
    expect(server.counts()).toMatchObject({ unique: 5, duplicates: 0 });
    const wire = tap.text();
    expect(wire).toContain('Subject: Hello Smith, Ann');
    expect(wire).toContain('Dear Smith, Ann,\r\nyour plan: gold.');
    expect(wire).toContain('Dear Bob,\r\nyour plan: silver "plus".');
    expect(wire).toContain('Dear Ed,\r\nyour plan: free.');
    // Nothing failed: no failures file unless asked for.
    expect((await readdir(dir.path)).filter((f) => f.startsWith('failures-'))).toEqual([]);
  });

  it('sends nothing again when re-run with the same batch id', async () => {
    await setUp();
    expect((await send('--batch-id', 'nov')).code).toBe(0);
    expect(server.stats().accepted).toBe(5);
    const state = await readFile(join(dir.path, '.mailpacer-nov.sent'), 'utf8');
    expect(state.split('\n').filter(Boolean).sort()).toEqual(['ann@example.org', 'bob@example.org', 'cy@example.org', 'di@example.org', 'ed@example.org']);

    const again = await send('--batch-id', 'nov');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('batch nov: 0 to send, 5 already sent by an earlier run');
    expect(again.stdout).toContain('sent 0, failed 0, skipped 5');
    expect(server.stats().accepted).toBe(5);
  });

  it('sends only the new rows when the list grew', async () => {
    await setUp();
    await send('--batch-id', 'nov');
    await writeFile(files.list, `${LIST}\r\nfay@example.org,Fay,gold\r\n`);
    const again = await send('--batch-id', 'nov');
    expect(again.stdout).toContain('batch nov: 1 to send, 5 already sent by an earlier run');
    expect(server.stats().accepted).toBe(6);
    expect(server.counts().duplicates).toBe(0);
  });

  it('exits 1 and writes a failures CSV when a recipient is refused', async () => {
    await setUp({ script: [{ match: 'cy@example.org', code: 550, reply: '550 5.1.1 User unknown' }] });
    const result = await send('--batch-id', 'nov');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('sent 4, failed 1');
    const failures = join(dir.path, 'failures-nov.csv');
    expect(result.stdout).toContain(`failures written to ${failures}`);
    expect(parseCsv(await readFile(failures, 'utf8')).rows.map((r) => r.fields)).toEqual([
      { id: 'cy@example.org', email: 'cy@example.org', decision: 'permanent', response: '550 5.1.1 User unknown' },
    ]);
    expect(server.stats().accepted).toBe(4);
  });

  it('writes the failures CSV where --failures says, even when nothing failed', async () => {
    await setUp();
    const out = join(dir.path, 'out.csv');
    expect((await send('--batch-id', 'nov', '--failures', out)).code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe('id,email,decision,response\r\n');
  });

  it('sends nothing when the template uses a column the list lacks', async () => {
    await setUp();
    await writeFile(files.template, 'Subject: Hi {{first_name}}\n\nHello\n');
    const result = await send('--batch-id', 'nov');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('mailpacer send: the template uses {{first_name}}, but the list has no "first_name" column (columns: email, name, plan)\n');
    expect(server.stats().accepted).toBe(0);
  });

  it('sends nothing when a row lacks a field, and names the field and the row', async () => {
    await setUp();
    await writeFile(files.list, `${LIST}\r\nfay@example.org,Fay\r\n`);
    const result = await send('--batch-id', 'nov');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('mailpacer send: row 6 (line 7): missing field "plan" (used as {{plan}} in the template)\n');
    expect(server.stats().accepted).toBe(0);
  });

  it('takes --subject over the template\'s subject line', async () => {
    await setUp();
    expect((await send('--batch-id', 'nov', '--subject', 'News for {{name}}')).code).toBe(0);
    expect(tap.text()).toContain('Subject: News for Di');
  });
});
