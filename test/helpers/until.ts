/**
 * Waits until `condition` holds, checking it every `everyMs`, or throws after `timeoutMs` with what
 * it waited for (and `detail()`, the state it saw instead, when given). For tests that wait on
 * real servers and processes: the bound is a ceiling for a stuck run, never a timing assertion.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs, what, everyMs = 20, detail }: { timeoutMs: number; what: string; everyMs?: number; detail?: () => unknown },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      const seen = detail === undefined ? '' : `; saw ${JSON.stringify(await detail())}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
