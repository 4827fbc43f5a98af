import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
    'cli/index': 'src/cli/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // import.meta.url in the CommonJS build (the Lua scripts are found relative to the module).
  shims: true,
  // p-retry is ESM-only: bundle it so that `require('mailpacer')` works.
  noExternal: ['p-retry', 'is-network-error'],
  // The Lua scripts ship as files next to the bundle (dist/lua/*.lua), read at runtime.
  publicDir: false,
  onSuccess: 'node scripts/copy-lua.mjs',
});
