/**
 * When a change is in force, as haproxy itself says: its stats socket (host/haproxy/stats.ts
 * showStat) lists the server with the new weight. Used for the agent's haproxy and for the
 * baseline's, polled the same way, so both times carry the same polling error (≤ POLL_MS
 * plus one `show stat`).
 *
 * Invariant: reads only (the stats client writes nothing but `show stat`).
 */
import { showStat } from '../host/haproxy/stats.ts';

const POLL_MS = 5;

/** The weight haproxy shows for server `svname` (any backend), or null when not listed. */
export async function serverWeight(socket: string, svname: string): Promise<number | null> {
  const rows = await showStat(socket, { timeoutMs: 2000 });
  return rows.find((r) => r.type === 'server' && r.svname === svname)?.weight ?? null;
}

/**
 * Resolves once the socket shows `weight` for `svname`; a socket that is briefly missing or
 * silent (a process handing over) is polled again. Throws after `timeoutMs`.
 */
export async function waitWeight(
  socket: string,
  svname: string,
  weight: number,
  timeoutMs = 30_000,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  let last: unknown = 'nothing read';
  while (performance.now() < until) {
    try {
      last = await serverWeight(socket, svname);
      if (last === weight) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(
    `${socket}: ${svname} not at weight ${weight} in ${timeoutMs} ms (last: ${last})`,
  );
}
