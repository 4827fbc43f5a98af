import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MailerOptions } from '../index.js';

/** A config file that cannot be loaded (missing, unreadable, or without the options). */
export class ConfigFileError extends Error {
  override name = 'ConfigFileError' as const;
}

/**
 * Loads the `createMailer` options from a config file: `.json`, or a module (`.js`, `.mjs`,
 * `.cjs`, and `.ts`/`.mts`/`.cts` when `tsx` is installed) whose default export, or `config`
 * export, is the options, a promise of them, or a function (async or not) that returns them
 * (called once, without arguments). The options are validated later, by `createMailer`.
 */
export async function loadConfigFile(file: string): Promise<MailerOptions> {
  const path = resolve(file);
  const ext = extname(path).toLowerCase();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(`cannot read config file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`, { cause: error });
  }
  if (ext === '.json') {
    try {
      return JSON.parse(text) as MailerOptions;
    } catch (error) {
      throw new ConfigFileError(`config file ${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  if (!['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'].includes(ext)) {
    throw new ConfigFileError(`config file ${file}: expected .js, .mjs, .cjs, .ts or .json`);
  }
  const module = /^\.[mc]?ts$/.test(ext) ? await importTypeScript(path, file) : await importModule(path, file);
  let options = module.default ?? module.config;
  // A CommonJS module (or TypeScript compiled as one) arrives as { default: module.exports }.
  if (isObject(options) && !('providers' in options) && !isThenable(options)) {
    const inner = (options as ConfigModule).default ?? (options as ConfigModule).config;
    if (isObject(inner) || typeof inner === 'function') options = inner;
  }
  options = await resolveOptions(options, file);
  if (!isObject(options) || Array.isArray(options)) {
    throw new ConfigFileError(`config file ${file} exports no options: expected ${EXPECTED}${describe(options)}`);
  }
  return options as MailerOptions;
}

const EXPECTED = '`export default { providers: ... }`, `export const config = { ... }`, or a function (async or not) returning the options';

/** The options behind a promise or a function: awaited, and called (once, without arguments). */
async function resolveOptions(exported: unknown, file: string): Promise<unknown> {
  try {
    let options = await exported;
    if (typeof options === 'function') options = await (options as () => unknown)();
    return options;
  } catch (error) {
    throw new ConfigFileError(`config file ${file}: its exported ${typeof exported === 'function' ? 'function' : 'promise'} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
}

/** What came instead of the options, for the error: ` (got a string)`. */
function describe(value: unknown): string {
  if (value === undefined) return '';
  return ` (got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`})`;
}

const isThenable = (value: unknown): boolean => typeof (value as { then?: unknown } | null)?.then === 'function';

const isObject = (value: unknown): value is object => typeof value === 'object' && value !== null;

type ConfigModule = { default?: unknown; config?: unknown };

async function importModule(path: string, file: string): Promise<ConfigModule> {
  try {
    return (await import(pathToFileURL(path).href)) as ConfigModule;
  } catch (error) {
    throw new ConfigFileError(`config file ${file} failed to load: ${(error as Error).message}`, { cause: error });
  }
}

// A variable specifier keeps the bundler from inlining tsx (a dev tool) into the CLI.
const TSX_API = 'tsx/esm/api';

async function importTypeScript(path: string, file: string): Promise<ConfigModule> {
  let api: typeof import('tsx/esm/api');
  try {
    api = (await import(TSX_API)) as typeof import('tsx/esm/api');
  } catch {
    throw new ConfigFileError(`config file ${file} is TypeScript, which needs tsx installed (npm i -D tsx); or write it as .js, .mjs or .json`);
  }
  try {
    return (await api.tsImport(pathToFileURL(path).href, pathToFileURL(`${process.cwd()}/`).href)) as ConfigModule;
  } catch (error) {
    throw new ConfigFileError(`config file ${file} failed to load: ${(error as Error).message}`, { cause: error });
  }
}
