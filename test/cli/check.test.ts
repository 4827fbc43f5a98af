import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { freePort, redisAvailable } from '../helpers/redis-server.js';
import { runCli, tempDir } from './helpers.js';

describe('mailpacer check', () => {
  let server: ThrottlingSmtpServer;
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeEach(async () => {
    server = await startThrottlingSmtpServer({ auth: { user: 'mailer', pass: 's3cret-pass' } });
    dir = await tempDir();
  });
  afterEach(async () => {
    await server.close();
    await dir.remove();
  });

  it('names a misspelt option on one line and exits 1', async () => {
    const config = join(dir.path, 'mailpacer.config.mjs');
    await writeFile(config, `export default { providers: { local: { transport: ${JSON.stringify(server.transportOptions())}, maxConection: 3 } } };\n`);
    const result = await runCli(['check', '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('config error: providers.local.maxConection: unknown option (did you mean maxConnections?)\n');
  });

  it('names a bad duration with its path', async () => {
    const config = join(dir.path, 'config.json');
    await writeFile(config, JSON.stringify({ providers: { ses: { transport: server.transportOptions(), rate: [{ max: 14, per: '1 sec' }] } } }));
    const result = await runCli(['check', '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('config error: providers.ses.rate[0].per: expected a duration like "250ms", "1s", "5m", "24h", or milliseconds, got "1 sec"\n');
  });

  it('verifies a good TypeScript config and prints each lane\'s limits and the time a batch takes', async () => {
    const config = join(dir.path, 'mailpacer.config.ts');
    const transport = { ...server.transportOptions(), auth: { user: 'mailer', pass: 's3cret-pass' } };
    await writeFile(
      config,
      `import type { MailerOptions } from ${JSON.stringify(join(process.cwd(), 'src/index.js'))};
const config: MailerOptions = {
  providers: {
    ses: { transport: ${JSON.stringify(transport)}, rate: [{ max: 14, per: '1s' }, { max: 50_000, per: '24h' }], maxConnections: 10 },
  },
};
export default config;
`,
    );
    const result = await runCli(['check', '--config', config, '--count', '120000']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`config ${config}: valid`);
    expect(result.stdout).toContain(`transport   smtp://127.0.0.1:${server.port}: connected and logged in`);
    expect(result.stdout).toContain('limits      14/1s, 50,000/24h; 10 connections; 100 messages per connection');
    // 50,000 go within the day's quota, the other 70,000 at one per 1.728 s: 33.6 hours.
    expect(result.stdout).toContain('estimate    120,000 messages take at least 1d 09h, bound by 50,000/24h: 50,000 at once, then one every 1.7s (14/1s: 2h 22m alone)');
    expect(result.stdout).toContain('all checks passed');
  });

  it('estimates 10,000 messages by default', async () => {
    const config = join(dir.path, 'config.json');
    await writeFile(config, JSON.stringify({ providers: { relay: { transport: server.transportOptions(), rate: { max: 14, per: '1s' } } } }));
    const result = await runCli(['check', '--config', config]);
    expect(result.stdout).toContain('estimate    10,000 messages take at least 11m 54s, bound by 14/1s');
  });

  it('fails a provider whose login is refused, without printing the password', async () => {
    const config = join(dir.path, 'config.json');
    const transport = { ...server.transportOptions(), auth: { user: 'mailer', pass: 'wrong-password' } };
    await writeFile(config, JSON.stringify({ providers: { relay: { transport, rate: { max: 5, per: '1s' } } } }));
    const result = await runCli(['check', '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAILED: Invalid login: 535 5.7.8 Authentication credentials invalid');
    expect(result.stdout).toContain('1 check failed');
    expect(result.stdout + result.stderr).not.toContain('wrong-password');
  });

  it('says what is missing from the command line, with exit status 2', async () => {
    expect(await runCli(['check'])).toMatchObject({ code: 2, stderr: 'mailpacer: --config is required (see mailpacer --help)\n' });
    expect(await runCli(['check', '--cofnig', 'x'])).toMatchObject({ code: 2, stderr: 'mailpacer: check: unknown option --cofnig (see mailpacer --help)\n' });
  });

  it('checks the Redis of a config: reachable, or FAILED with exit status 1', async (context) => {
    if (!(await redisAvailable())) context.skip();
    const config = (redis: string) => `export default { redis: ${JSON.stringify(redis)}, providers: { local: { transport: ${JSON.stringify(server.transportOptions())} } } };\n`;
    const up = join(dir.path, 'up.mjs');
    await writeFile(up, config('redis://127.0.0.1:6379'));
    const reachable = await runCli(['check', '--config', up]);
    expect(reachable.stdout).toContain('redis redis://127.0.0.1:6379: reachable\n');
    expect(reachable.code).toBe(0);
    const down = join(dir.path, 'down.mjs');
    const port = await freePort();
    await writeFile(down, config(`redis://127.0.0.1:${port}`));
    const failed = await runCli(['check', '--config', down]);
    expect(failed.stdout).toMatch(new RegExp(`redis redis://127\\.0\\.0\\.1:${port}: FAILED: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\n`));
    expect(failed.code).toBe(1);
  });

  it('says so in one line when the config file does not exist, exit status 2', async () => {
    const result = await runCli(['check', '--config', join(dir.path, 'nope.js')]);
    expect(result).toMatchObject({ code: 2, stderr: `mailpacer check: cannot read config file ${join(dir.path, 'nope.js')}: no such file\n` });
  });
});
