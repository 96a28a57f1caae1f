/**
 * HTTP clients for the LBaaS lab: one `curl` from a namespace, and a steady request loop
 * (one request after another, each its own connection) that counts what it got, for the
 * hitless-reload and kill -9 scenarios and bench/lbaas-*; several loops side by side for
 * concurrent load.
 *
 * Invariant: every request runs inside the namespace it is given (`ip netns exec`), with a
 * connect and a total timeout, so a dead VIP is a counted failure, never a hang.
 */
import type { Lab } from './lab.ts';

export interface CurlOptions {
  /** Seconds; default 2 (connect) and 5 (total). */
  connectTimeout?: number;
  maxTime?: number;
}

/** One GET from `netns`; resolves with the body (trimmed), rejects with curl's error. */
export async function curlIn(
  lab: Lab,
  netns: string,
  url: string,
  o: CurlOptions = {},
): Promise<string> {
  const argv = ['curl', '-sS', '--fail', '--connect-timeout', String(o.connectTimeout ?? 2)];
  argv.push('--max-time', String(o.maxTime ?? 5), url);
  return (await lab.exec(netns, argv)).trim();
}

export interface LoopResult {
  /** Bodies of the answered requests, in order. */
  bodies: string[];
  /** The failed requests: when (ms since the loop started) and why. */
  failures: { at: number; error: string }[];
  /** Milliseconds the loop ran. */
  elapsed: number;
}

export interface RequestLoop {
  /** Requests answered so far. */
  answered(): number;
  /** Lets the request in flight finish, then resolves with the tally. */
  stop(): Promise<LoopResult>;
}

/** Requests `url` from `netns` back to back until `stop()`. */
export function requestLoop(
  lab: Lab,
  netns: string,
  url: string,
  o: CurlOptions = {},
): RequestLoop {
  const result: LoopResult = { bodies: [], failures: [], elapsed: 0 };
  const started = Date.now();
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        result.bodies.push(await curlIn(lab, netns, url, o));
      } catch (e) {
        result.failures.push({ at: Date.now() - started, error: (e as Error).message });
      }
    }
    result.elapsed = Date.now() - started;
    return result;
  })();
  return {
    answered: () => result.bodies.length,
    stop() {
      running = false;
      return done;
    },
  };
}

/** `n` request loops side by side (concurrent new connections); one merged tally. */
export function concurrentLoops(
  lab: Lab,
  netns: string,
  url: string,
  n: number,
  o: CurlOptions = {},
): RequestLoop {
  const loops = Array.from({ length: n }, () => requestLoop(lab, netns, url, o));
  return {
    answered: () => loops.reduce((sum, x) => sum + x.answered(), 0),
    async stop() {
      const all = await Promise.all(loops.map((x) => x.stop()));
      return {
        bodies: all.flatMap((r) => r.bodies),
        failures: all.flatMap((r) => r.failures).sort((a, b) => a.at - b.at),
        elapsed: Math.max(...all.map((r) => r.elapsed)),
      };
    },
  };
}

/** How many times each body occurs. */
export function tally(bodies: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const b of bodies) counts[b] = (counts[b] ?? 0) + 1;
  return counts;
}
