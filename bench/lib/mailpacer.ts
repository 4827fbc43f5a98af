/**
 * mailpacer as users run it: the built package (`dist/index.js`, made by `npm run build`, which
 * `npm run bench` runs first), not the TypeScript sources through tsx. tsx's transpiled output
 * differs from the bundle (it wraps every function it names in a `__name` helper, per creation), and
 * the baselines it is compared with (nodemailer, Bottleneck) run as published JavaScript too.
 * Types come from the sources, which the build is made from.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Mailpacer = typeof import('../../src/index.js');

const BUILD = new URL('../../dist/index.js', import.meta.url);

if (!existsSync(fileURLToPath(BUILD))) {
  throw new Error(`the benchmark measures the built package, and ${fileURLToPath(BUILD)} is missing: run \`npm run build\` (npm run bench does)`);
}

/** A computed specifier, so that neither tsc nor tsx maps it back to the sources. */
export const { createMailer } = (await import(BUILD.href)) as Mailpacer;
export type { Mailer } from '../../src/index.js';
