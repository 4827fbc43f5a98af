import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigFileError, loadConfigFile } from '../../src/cli/config-file.js';
import { tempDir } from './helpers.js';

const OPTIONS = { providers: { local: { transport: { host: '127.0.0.1', port: 2525 } } } };

describe('loadConfigFile', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await dir.remove();
  });

  const load = async (name: string, text: string) => {
    const file = join(dir.path, name);
    await writeFile(file, text);
    return loadConfigFile(file);
  };

  it.each([
    ['an object', `export default ${JSON.stringify(OPTIONS)};`],
    ['a `config` export', `export const config = ${JSON.stringify(OPTIONS)};`],
    ['a function', `export default () => (${JSON.stringify(OPTIONS)});`],
    ['an async function', `export default async () => (${JSON.stringify(OPTIONS)});`],
    ['a promise', `export default Promise.resolve(${JSON.stringify(OPTIONS)});`],
    ['a function returning a promise', `export const config = () => Promise.resolve(${JSON.stringify(OPTIONS)});`],
  ])('takes the options from %s', async (_, text) => {
    expect(await load('config.mjs', text)).toEqual(OPTIONS);
  });

  it('takes a CommonJS module.exports that is an async function', async () => {
    expect(await load('config.cjs', `module.exports = async () => (${JSON.stringify(OPTIONS)});`)).toEqual(OPTIONS);
  });

  it('says what is expected when the function returns something else', async () => {
    const attempt = load('config.mjs', 'export default () => 42;');
    await expect(attempt).rejects.toThrow(ConfigFileError);
    await expect(attempt).rejects.toThrow('exports no options: expected `export default { providers: ... }`, `export const config = { ... }`, or a function (async or not) returning the options (got a number)');
  });

  it('names the function that threw', async () => {
    await expect(load('config.mjs', 'export default async () => { throw new Error("SMTP_HOST is not set"); };')).rejects.toThrow(/config\.mjs: its exported function failed: SMTP_HOST is not set$/);
  });
});
