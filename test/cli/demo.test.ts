import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.js';

describe('mailpacer demo', () => {
  it('delivers every message through the throttling receiver, nothing lost or duplicated', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const result = await runDemo({ recipients: 200, out, tty: false, redis: undefined });

    expect(result).toMatchObject({ delivered: 200, failed: 0, lost: 0, duplicated: 0, exitCode: 0 });
    // Configured above the receiver's limits, mailpacer meets its 421s and its greylisting.
    expect(result.replies421).toBeGreaterThan(0);
    expect(result.retries.greylisted).toBe(10);
    expect(text).toContain('delivered       200 of 200');
    expect(text).toMatch(/^421s received   \d+/m);
    expect(text).toMatch(/^retries         \d+ {2}\(.*greylisted 10/m);
    expect(text).toContain('lost: 0, duplicated: 0');
  });
});
