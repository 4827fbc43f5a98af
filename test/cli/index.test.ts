import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from './helpers.js';

describe('mailpacer --help', () => {
  it('lists every flag with its short form, and the exit statuses', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const flag of ['-c, --config FILE', '-n, --count N', '-t, --template FILE', '-f, --from ADDR', '-s, --subject S', '-p, --provider NAME', '-h, --help', '--resend-in-doubt', '--batch-id ID', '--failures FILE', '--to LIST.csv']) {
      expect(stdout).toContain(flag);
    }
    expect(stdout).toMatch(/exit status: 0 ok; 1 .*; 2 bad usage or input .*130 interrupted/s);
  });
});

describe('exit statuses', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('is 2 for send given an invalid config (bad input), 1 for check (the check failed)', async () => {
    const config = join(dir.path, 'config.json');
    await writeFile(config, JSON.stringify({ providers: { local: { transport: { host: '127.0.0.1' }, maxConection: 3 } } }));
    await writeFile(join(dir.path, 'list.csv'), 'email\na@example.org\n');
    await writeFile(join(dir.path, 'news.txt'), 'Subject: Hi\n\nHello\n');
    const line = 'config error: providers.local.maxConection: unknown option (did you mean maxConnections?)\n';
    expect(await runCli(['send', '-c', config, '--to', join(dir.path, 'list.csv'), '-t', join(dir.path, 'news.txt'), '-f', 'a@example.org'])).toMatchObject({ code: 2, stderr: line });
    expect(await runCli(['check', '-c', config])).toMatchObject({ code: 1, stderr: line });
  });

  it('is 2 for a template or list that cannot be read', async () => {
    const config = join(dir.path, 'config.json');
    await writeFile(config, JSON.stringify({ providers: { local: { transport: { host: '127.0.0.1' } } } }));
    await writeFile(join(dir.path, 'list.csv'), 'mail\na@example.org\n');
    const template = join(dir.path, 'nope.txt');
    expect(await runCli(['send', '-c', config, '--to', join(dir.path, 'list.csv'), '-t', template, '-f', 'a@example.org'])).toMatchObject({ code: 2, stderr: `mailpacer send: cannot read template ${template}: no such file\n` });
    await writeFile(template, 'Subject: Hi\n\nHello\n');
    expect(await runCli(['send', '-c', config, '--to', join(dir.path, 'list.csv'), '-t', template, '-f', 'a@example.org'])).toMatchObject({
      code: 2,
      stderr: 'mailpacer send: line 1: the header has no "email" column (columns: mail)\n',
    });
  });
});
