import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import packageJson from '../../package.json' with { type: 'json' };
import { commandName, loadScripts, resolveLuaDir, SCRIPT_NAMES } from '../../src/limiter/scripts.js';

const luaDir = join(dirname(fileURLToPath(import.meta.url)), '../../src/limiter/lua');
const files = readdirSync(luaDir).filter((file) => file.endsWith('.lua'));

/** The leading `--[[ ... ]]` block of a script. */
function header(source: string): string {
  const match = /^--\[\[([\s\S]*?)\]\]/.exec(source);
  return match?.[1] ?? '';
}

describe('Lua scripts', () => {
  it('has one file per script, and no file that is not a script', () => {
    expect(files.map((file) => file.replace(/-\d+\.lua$/, '')).sort()).toEqual([...SCRIPT_NAMES].sort());
  });

  describe.each(files)('%s', (file) => {
    const source = readFileSync(join(luaDir, file), 'utf8');
    const keys = Number(/-(\d+)\.lua$/.exec(file)?.[1]);
    const doc = header(source);
    const body = source.slice(source.indexOf(']]') + 2);

    it('is named <name>-<KEYS count>.lua after the highest KEYS index it uses', () => {
      const used = [...body.matchAll(/KEYS\[(\d+)\]/g)].map((match) => Number(match[1]));
      expect(Math.max(...used)).toBe(keys);
      expect(body).not.toMatch(/#KEYS|KEYS\[[^\d]/);
    });

    it('opens with a header naming the script and documenting KEYS, ARGV and the reply', () => {
      expect(doc.trim().split(/[:\s]/)[0]).toBe(file.replace(/-\d+\.lua$/, ''));
      for (let i = 1; i <= keys; i++) expect(doc).toMatch(new RegExp(`KEYS\\[${i}\\]`));
      expect(doc).toMatch(/ARGV/);
      expect(doc).toMatch(/Returns/);
    });

    it('says in its header why it reads TIME, or that it does not', () => {
      expect(doc).toMatch(/TIME/);
      if (/redis\.call\('TIME'\)/.test(body)) expect(doc).toMatch(/TIME[^.]*, not a client clock/);
    });
  });

  it('defines each script with the KEYS count of its file name, under a versioned command name', () => {
    const scripts = loadScripts();
    for (const name of SCRIPT_NAMES) {
      const script = scripts[name];
      expect(files).toContain(script.file);
      expect(script.file).toMatch(new RegExp(`^${name}-\\d+\\.lua$`));
      expect(script.numberOfKeys).toBe(Number(/-(\d+)\.lua$/.exec(script.file)?.[1]));
      expect(script.lua).toBe(readFileSync(join(luaDir, script.file), 'utf8'));
    }
    const version = packageJson.version.replace(/[^A-Za-z0-9]/g, '_');
    expect(scripts.reserve.command).toBe(`mailpacer_${version}_reserve`);
    expect(scripts['state-cas'].command).toBe(`mailpacer_${version}_state_cas`);
    expect(commandName('held', '1.2.3-beta.1')).toBe('mailpacer_1_2_3_beta_1_held');
  });

  it('finds the lua directory from the source module and from the bundles (dist/, dist/cli/)', () => {
    expect(resolveLuaDir(dirname(luaDir))).toBe(luaDir);
    const root = mkdtempSync(join(tmpdir(), 'mailpacer-dist-'));
    try {
      mkdirSync(join(root, 'dist', 'lua'), { recursive: true });
      mkdirSync(join(root, 'dist', 'cli'));
      for (const file of files) writeFileSync(join(root, 'dist', 'lua', file), '');
      expect(resolveLuaDir(join(root, 'dist'))).toBe(join(root, 'dist', 'lua'));
      expect(resolveLuaDir(join(root, 'dist', 'cli'))).toBe(join(root, 'dist', 'lua'));
      expect(() => resolveLuaDir(root)).toThrow(/Lua scripts were not found/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
