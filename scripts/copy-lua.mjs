// Copies the limiter's Lua scripts next to the bundle, where src/limiter/scripts.ts finds them.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';

mkdirSync('dist/lua', { recursive: true });
for (const file of readdirSync('src/limiter/lua')) {
  if (file.endsWith('.lua')) cpSync(`src/limiter/lua/${file}`, `dist/lua/${file}`);
}
