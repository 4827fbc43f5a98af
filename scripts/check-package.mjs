// Packs the package as npm would publish it, unpacks it into a scratch project, and checks that it
// loads through `import` and `require` (both entry points), that its types resolve for ESM and
// CommonJS consumers, that p-retry is bundled into the CommonJS build, and that the Lua scripts ship.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
// Inside the repository, so that the unpacked package finds its dependencies in ./node_modules.
const scratch = join(root, '.tmp', 'package-check');
rmSync(scratch, { recursive: true, force: true });
mkdirSync(join(scratch, 'node_modules'), { recursive: true });

const run = (cmd, args, cwd = scratch) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
const fail = (message) => {
  console.error(`package check failed: ${message}`);
  process.exit(1);
};

const [{ filename }] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', scratch], root));
mkdirSync(join(scratch, 'node_modules', 'mailpacer'));
run('tar', ['-xzf', join(scratch, filename), '-C', join(scratch, 'node_modules', 'mailpacer'), '--strip-components=1']);
const pkg = join(scratch, 'node_modules', 'mailpacer');

const lua = existsSync(join(pkg, 'dist', 'lua')) ? readdirSync(join(pkg, 'dist', 'lua')).filter((f) => f.endsWith('.lua')) : [];
if (lua.length === 0) fail('no Lua scripts in dist/lua of the packed package');
if (/require\(["']p-retry["']\)/.test(readFileSync(join(pkg, 'dist', 'index.cjs'), 'utf8'))) fail('dist/index.cjs requires p-retry instead of bundling it');

writeFileSync(join(scratch, 'esm.mjs'), `
import { createMailer, classifySmtpError, ConfigError } from 'mailpacer';
import { startThrottlingSmtpServer } from 'mailpacer/testing';
if (typeof createMailer !== 'function' || typeof startThrottlingSmtpServer !== 'function') throw new Error('missing exports');
if (classifySmtpError('421 4.7.0 Too many connections').kind !== 'connection-limited') throw new Error('classify');
const srv = await startThrottlingSmtpServer();
const mailer = createMailer({ providers: { test: { transport: srv.transportOptions(), rate: { max: 50, per: '1s' } } } });
const info = await mailer.send({ from: 'a@example.org', to: 'b@example.net', subject: 'packed', text: 'esm' });
await mailer.close();
// The Lua scripts, read from the packed dist/lua, on a real Redis (CI starts one).
const onRedis = createMailer({ redis: 'redis://127.0.0.1:6379', keyPrefix: 'mailpacer-package-check-' + process.pid, ledgerTtl: '1m', providers: { test: { transport: srv.transportOptions(), rate: { max: 50, per: '1s' } } } });
const batch = await onRedis.sendBatch(['c@example.net', 'd@example.net'], { id: 'package-check', build: (to) => ({ id: to, from: 'a@example.org', to, text: 'redis' }) });
if (batch.sent !== 2) throw new Error('packed package on Redis: ' + JSON.stringify(batch));
await onRedis.close(); await srv.close();
console.log('redis: ok (Lua scripts from the packed package)');
try { createMailer({ providers: {} }); throw new Error('no ConfigError'); } catch (e) { if (!(e instanceof ConfigError)) throw e; }
console.log('import: ok (' + info.attempts + ' attempt)');
`);
writeFileSync(join(scratch, 'cjs.cjs'), `
const { createMailer, classifySmtpError } = require('mailpacer');
const { startThrottlingSmtpServer } = require('mailpacer/testing');
(async () => {
  if (classifySmtpError({ responseCode: 454, response: '454 Throttling failure: Daily message quota exceeded.' }).kind !== 'quota-exceeded') throw new Error('classify');
  const srv = await startThrottlingSmtpServer();
  const mailer = createMailer({ providers: { test: { transport: srv.transportOptions() } } });
  const info = await mailer.send({ from: 'a@example.org', to: 'b@example.net', subject: 'packed', text: 'cjs' });
  await mailer.close();
  // ioredis is loaded by the first mailer that needs it, not with mailpacer (it slows nodemailer down).
  const ioredisLoaded = () => Object.keys(require.cache).some((path) => /[\\/]node_modules[\\/]ioredis[\\/]/.test(path));
  if (ioredisLoaded()) throw new Error('ioredis was loaded by a mailer without Redis');
  const onRedis = createMailer({ redis: 'redis://127.0.0.1:6379', keyPrefix: 'mailpacer-package-check-cjs-' + process.pid, providers: { test: { transport: srv.transportOptions() } } });
  await onRedis.send({ from: 'a@example.org', to: 'c@example.net', subject: 'packed', text: 'cjs on redis' });
  await onRedis.close(); await srv.close();
  if (!ioredisLoaded()) throw new Error('a mailer on Redis did not load ioredis');
  console.log('require: ok (' + info.attempts + ' attempt; ioredis loaded only for the mailer on Redis)');
})().catch((e) => { console.error(e); process.exit(1); });
`);
const typesProbe = `
import { createMailer, type MailerOptions, type RetryEvent, isDeliveryError } from 'mailpacer';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from 'mailpacer/testing';
const options: MailerOptions = { providers: { a: { transport: { host: 'h', port: 25 }, rate: [{ max: 1, per: '1s' }] } } };
const mailer = createMailer(options);
mailer.on('retry', (e: RetryEvent) => e.attempt.toFixed());
const server: Promise<ThrottlingSmtpServer> = startThrottlingSmtpServer({ maxConnections: 1 });
export const ok = [isDeliveryError, server];
`;
writeFileSync(join(scratch, 'types-esm.mts'), typesProbe);
writeFileSync(join(scratch, 'types-cjs.cts'), typesProbe);
writeFileSync(join(scratch, 'tsconfig.json'), JSON.stringify({
  compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, exactOptionalPropertyTypes: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] },
  files: ['types-esm.mts', 'types-cjs.cts'],
}));

process.stdout.write(run('node', ['esm.mjs']));
process.stdout.write(run('node', ['cjs.cjs']));
run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json']);
console.log('types: ok (ESM and CommonJS consumers)');
console.log(`package: ok (${filename}, ${lua.length} Lua scripts)`);
rmSync(scratch, { recursive: true, force: true });
