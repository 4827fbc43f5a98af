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
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('mailpacer send: the template uses {{first_name}}, but the list has no "first_name" column (columns: email, name, plan)\n');
    expect(server.stats().accepted).toBe(0);
  });

  it('sends nothing when a row lacks a field, and names the field and the row', async () => {
    await setUp();
    await writeFile(files.list, `${LIST}\r\nfay@example.org,Fay\r\n`);
    const result = await send('--batch-id', 'nov');
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('mailpacer send: row 6 (line 7): missing field "plan" (used as {{plan}} in the template)\n');
    expect(server.stats().accepted).toBe(0);
  });

  it('takes --subject over the template\'s subject line', async () => {
    await setUp();
    expect((await send('--batch-id', 'nov', '--subject', 'News for {{name}}')).code).toBe(0);
    expect(tap.text()).toContain('Subject: News for Di');
  });

  it.each([
    ['two addresses', '"x1@example.net, x2@example.net",Fay', 'the email cell "x1@example.net, x2@example.net" holds 2 addresses: expected one address per row, like ann@example.org'],
    ['a header after a line break', '"x3@example.net\r\nBcc: x4@example.net",Fay', 'the email cell "x3@example.net\\r\\nBcc: x4@example.net" holds a line break or a control character: expected one address per row, like ann@example.org'],
    ['a display name', '"Fay <fay@example.org>",Fay', 'the email cell "Fay <fay@example.org>" is not one bare address: expected one address per row, like ann@example.org'],
    ['nothing, in a row with other values', ',Fay', 'the email cell is empty (every row needs one address; a row with no value at all is skipped)'],
  ])('sends nothing when an email cell holds %s: one line naming the row and the cell, exit status 2', async (_, cells, message) => {
    await setUp();
    await writeFile(files.list, `${LIST}\r\n${cells},gold\r\n`);
    const result = await send('--batch-id', 'nov');
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: `mailpacer send: row 6 (line 7): ${message}\n` });
    expect(server.stats().accepted).toBe(0);
    expect((await readdir(dir.path)).filter((f) => f.startsWith('.mailpacer-'))).toEqual([]);
  });

  it('skips blank rows (commas only, as a spreadsheet writes them, or spaces) and sends the others', async () => {
    await setUp();
    await writeFile(files.list, `${LIST.replace('\r\nbob@', '\r\n,,\r\nbob@')}\r\n   \r\n,,\r\n`);
    const result = await send('--batch-id', 'nov');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('batch nov: 5 to send, 3 blank rows skipped');
    expect(result.stdout).toContain('sent 5, failed 0, skipped 0, in doubt 0 (5 in the list)');
    expect(server.counts()).toMatchObject({ unique: 5, duplicates: 0 });
  });

  it('sends a repeated address once, and counts the repeat as skipped', async () => {
    await setUp();
    await writeFile(files.list, `${LIST}\r\nANN@example.org,Ann again,gold\r\n`);
    const result = await send('--batch-id', 'nov');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('batch nov: 5 to send, 1 repeated in the list (sent once)');
    expect(result.stdout).toContain('sent 5, failed 0, skipped 1, in doubt 0 (6 in the list)');
    expect(server.counts()).toMatchObject({ unique: 5, duplicates: 0 });
  });

  it.each([['not an address'], ['a@example.com, b@example.com'], ['News <news@example.com']])('refuses --from %j before sending, exit status 2', async (from) => {
    await setUp();
    const result = await runCli(['send', '--config', files.config, '--to', files.list, '--template', files.template, '--from', from]);
    expect(result).toMatchObject({ code: 2, stdout: '' });
    expect(result.stderr).toBe(`mailpacer send: --from ${JSON.stringify(from)} is not one address: expected news@example.org or "News <news@example.org>"\n`);
    expect(server.stats().accepted).toBe(0);
  });

  it('refuses an empty subject, from the template or from --subject, exit status 2', async () => {
    await setUp();
    await writeFile(files.template, 'Subject:  \n\nDear {{name}}\n');
    expect(await send('--batch-id', 'nov')).toMatchObject({ code: 2, stderr: 'mailpacer send: the template\'s "Subject:" line is empty: write the subject there, or pass --subject\n' });
    expect(await send('--batch-id', 'nov', '--subject', '')).toMatchObject({ code: 2, stderr: 'mailpacer send: --subject is empty\n' });
    expect(server.stats().accepted).toBe(0);
  });

  it('refuses a subject that is empty for a row, naming the row', async () => {
    await setUp();
    await writeFile(files.list, `${LIST}\r\nfay@example.org,,gold\r\n`);
    const result = await send('--batch-id', 'nov', '--subject', '{{name}}');
    expect(result).toMatchObject({ code: 2, stderr: 'mailpacer send: row 6 (line 7): the subject is empty for this row (the fields it uses are empty)\n' });
    expect(server.stats().accepted).toBe(0);
  });

  it('says in one line that the list does not exist, exit status 2', async () => {
    await setUp();
    const missing = join(dir.path, 'nope.csv');
    const result = await runCli(['send', '--config', files.config, '--to', missing, '--template', files.template, '--from', 'news@example.com']);
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: `mailpacer send: cannot read list ${missing}: no such file\n` });
  });

  it('finds an unwritable --failures path before sending anything, exit status 2', async () => {
    await setUp();
    const out = join(dir.path, 'no-such-dir', 'failures.csv');
    const result = await send('--batch-id', 'nov', '--failures', out);
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: `mailpacer send: cannot write --failures ${out}: no such file or directory\n` });
    expect(server.stats().accepted).toBe(0);
  });

  it('prints a lane that stopped (refused login) without a rate under --verbose', async () => {
    await setUp({ auth: { user: 'mailer', pass: 'right' } });
    const transport = { ...server.transportOptions(), port: tap.port, auth: { user: 'mailer', pass: 'wrong' } };
    await writeFile(files.config, JSON.stringify({ providers: { local: { transport } } }));
    const result = await send('--batch-id', 'nov', '--verbose');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('local: stopped after auth: 535 5.7.8 Authentication credentials invalid\n');
    expect(result.stdout).not.toContain('Infinity');
  });

  describe('messages in doubt (the connection was lost after the message went out)', () => {
    it('are recorded as in doubt, counted apart from the sent, and listed in the failures CSV', async () => {
      await setUp({ dropAfterAcceptRate: 1 });
      const result = await send('--batch-id', 'nov');
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('sent 0, failed 0, skipped 0, in doubt 5 (5 in the list)');
      const state = (await readFile(join(dir.path, '.mailpacer-nov.sent'), 'utf8')).split('\n').filter(Boolean).sort();
      expect(state).toEqual(['in-doubt ann@example.org', 'in-doubt bob@example.org', 'in-doubt cy@example.org', 'in-doubt di@example.org', 'in-doubt ed@example.org']);
      const failures = parseCsv(await readFile(join(dir.path, 'failures-nov.csv'), 'utf8')).rows.map((r) => r.fields);
      expect(failures).toHaveLength(5);
      expect(failures[0]).toMatchObject({ decision: 'in-doubt', response: expect.stringMatching(/^no reply after the message went out: the server may have accepted it; not resent \(--resend-in-doubt sends it again, which may duplicate it\)$/) });
    });

    it('are reported in doubt by a re-run, not as already sent, and not sent again', async () => {
      await setUp({ dropAfterAcceptRate: 1 });
      await send('--batch-id', 'nov');
      expect(server.stats().accepted).toBe(5);
      const again = await send('--batch-id', 'nov');
      expect(again.code).toBe(1);
      expect(again.stdout).toContain('batch nov: 0 to send, 5 in doubt since an earlier run (not resent: see --resend-in-doubt)');
      expect(again.stdout).toContain('sent 0, failed 0, skipped 0, in doubt 5 (5 in the list)');
      expect(again.stdout).not.toContain('already sent');
      const failures = parseCsv(await readFile(join(dir.path, 'failures-nov.csv'), 'utf8')).rows.map((r) => r.fields);
      expect(failures.map((f) => f.decision)).toEqual(Array(5).fill('in-doubt'));
      expect(failures[0]!.response).toMatch(/^in doubt since an earlier run of the batch: /);
      expect(server.stats().accepted).toBe(5);
    });

    it('are sent again with --resend-in-doubt, and then recorded as sent', async () => {
      await setUp({ dropAfterAcceptRate: 1 });
      await send('--batch-id', 'nov');
      // The receiver is fixed: the same config now reaches one that answers.
      await tap.close();
      await server.close();
      await setUp();
      const resent = await send('--batch-id', 'nov', '--resend-in-doubt');
      expect(resent.code).toBe(0);
      expect(resent.stdout).toContain('sent 5, failed 0, skipped 0, in doubt 0 (5 in the list)');
      expect(server.stats().accepted).toBe(5);
      const last = await send('--batch-id', 'nov');
      expect(last.stdout).toContain('batch nov: 0 to send, 5 already sent by an earlier run');
      expect(last.code).toBe(0);
    });
  });
});
