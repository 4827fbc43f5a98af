import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import packageJson from '../../package.json' with { type: 'json' };

/**
 * The Redis limiter's Lua scripts: files in `lua/` named `<name>-<KEYS count>.lua` (BullMQ's
 * convention), each opening with a header that documents its KEYS, ARGV and reply. They are
 * defined on the client with ioredis `defineCommand` under a name that carries the package
 * version, so that two versions of mailpacer sharing one client never run each other's scripts.
 */
export const SCRIPT_NAMES = ['reserve', 'acquire', 'renew', 'release', 'held', 'state-get', 'state-cas', 'ledger-claim', 'ledger-beat', 'ledger-mark', 'procs', 'quota-add'] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface LuaScript {
  name: ScriptName;
  /** File name inside the lua directory, such as `reserve-2.lua`. */
  file: string;
  /** How many KEYS the script takes: the number in its file name. */
  numberOfKeys: number;
  /** The name it is defined under on the client, such as `mailpacer_0_1_0_reserve`. */
  command: string;
  lua: string;
}

/** The client methods the scripts need. Anything with ioredis' `defineCommand` will do (Redis or Cluster). */
export type ScriptClient = Pick<Redis, 'defineCommand'>;

const FILE = /^([a-z][a-z-]*)-(\d+)\.lua$/;

/** Version-qualified command name, such as `mailpacer_0_1_0_state_get`. */
export function commandName(name: ScriptName, version: string = packageJson.version): string {
  return `mailpacer_${version.replace(/[^A-Za-z0-9]/g, '_')}_${name.replace(/-/g, '_')}`;
}

/**
 * Finds the directory of the Lua files from the directory of the module that runs: `./lua` next
 * to `src/limiter/scripts.ts` (tests, tsx), `./lua` next to the bundle `dist/index.js` or
 * `dist/index.cjs`, and `../lua` from a bundle in a sub-folder such as `dist/cli/`.
 */
export function resolveLuaDir(from: string): string {
  const candidates = [join(from, 'lua'), join(from, '..', 'lua')];
  const found = candidates.find((dir) => existsSync(dir) && readdirSync(dir).some((file) => FILE.exec(file)?.[1] === SCRIPT_NAMES[0]));
  if (!found) {
    throw new Error(`mailpacer: the limiter's Lua scripts were not found; looked in ${candidates.join(', ')}`);
  }
  return found;
}

/** Directory of this module. The CJS bundle has `__dirname` (and an empty `import.meta` unless tsup's shims are on); ESM has `import.meta.url`. */
function moduleDir(): string {
  return typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url));
}

/** Reads every script from `dir`, checking that each named script has exactly one file. */
export function readScripts(dir: string): Record<ScriptName, LuaScript> {
  const files = readdirSync(dir).filter((file) => file.endsWith('.lua'));
  const scripts = {} as Record<ScriptName, LuaScript>;
  for (const name of SCRIPT_NAMES) {
    const matches = files.filter((file) => FILE.exec(file)?.[1] === name);
    if (matches.length !== 1) {
      throw new Error(`mailpacer: expected one Lua file for script "${name}" in ${dir}, found ${matches.length}`);
    }
    const file = matches[0]!;
    scripts[name] = {
      name,
      file,
      numberOfKeys: Number(FILE.exec(file)![2]),
      command: commandName(name),
      lua: readFileSync(join(dir, file), 'utf8'),
    };
  }
  return scripts;
}

let cached: Record<ScriptName, LuaScript> | undefined;

/** The scripts of the installed package, read once. */
export function loadScripts(): Record<ScriptName, LuaScript> {
  cached ??= readScripts(resolveLuaDir(moduleDir()));
  return cached;
}

/**
 * Defines every script on the client. ioredis then sends EVALSHA, and EVAL the first time on a
 * connection or after a NOSCRIPT reply (a Redis restarted empty, SCRIPT FLUSH), so scripts never
 * need loading by hand. Defining again on the same client is harmless.
 */
export function defineScripts(client: ScriptClient): void {
  for (const script of Object.values(loadScripts())) {
    client.defineCommand(script.command, { lua: script.lua, numberOfKeys: script.numberOfKeys });
  }
}

type ScriptMethod = (...args: (string | number)[]) => Promise<unknown>;

/** Runs a script defined by `defineScripts`; rejects with Redis' error when the call fails. */
export function runScript(client: ScriptClient, name: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  const script = loadScripts()[name];
  if (keys.length !== script.numberOfKeys) {
    throw new Error(`mailpacer: script ${script.file} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  }
  const method = (client as unknown as Record<string, ScriptMethod | undefined>)[script.command];
  if (typeof method !== 'function') {
    throw new Error(`mailpacer: script ${script.command} is not defined on this client; call defineScripts() first`);
  }
  return method.call(client, ...keys, ...args);
}
