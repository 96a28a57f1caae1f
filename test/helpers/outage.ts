/**
 * An outage measured from outside: after a failure is caused, a probe (a DHCP exchange, an
 * HTTP GET) runs back to back until one answer counts as "restored" (the service is back
 * and served from where the failover put it). The report gives when that was, the longest
 * time without any answer, and how many probes failed.
 *
 * Invariant: every probe has its own timeout (the caller's), so a dead service is a
 * counted failure, never a hang; the clock starts before the failure is caused. Times are
 * taken when a probe ends, so they are exact to within one probe's duration (a DHCP
 * exchange up to 2 s, an HTTP GET up to 3 s).
 */
export interface Outage {
  what: string;
  /** ms from the failure to the first restored answer. */
  restoredAfterMs: number;
  /** The longest time (ms) with no answer at all, from the failure on. */
  longestGapMs: number;
  probes: number;
  failedProbes: number;
}

export async function measureOutage<T>(opts: {
  what: string;
  cause: () => Promise<unknown>;
  /** Resolves with an answer, rejects (or resolves undefined) when there was none. */
  probe: () => Promise<T | undefined>;
  restored: (answer: T) => Promise<boolean> | boolean;
  timeoutMs: number;
  pauseMs?: number;
}): Promise<Outage> {
  const t0 = Date.now();
  await opts.cause();
  let lastAnswer = 0;
  let longestGapMs = 0;
  let probes = 0;
  let failedProbes = 0;
  while (Date.now() - t0 < opts.timeoutMs) {
    probes++;
    const answer = await opts.probe().catch(() => undefined);
    const at = Date.now() - t0;
    if (answer === undefined) failedProbes++;
    else {
      longestGapMs = Math.max(longestGapMs, at - lastAnswer);
      lastAnswer = at;
      if (await opts.restored(answer))
        return { what: opts.what, restoredAfterMs: at, longestGapMs, probes, failedProbes };
    }
    await new Promise((r) => setTimeout(r, opts.pauseMs ?? 200));
  }
  throw new Error(
    `${opts.what}: not restored within ${opts.timeoutMs} ms (${failedProbes}/${probes} probes failed)`,
  );
}
