/**
 * Reading an LBaaS v1 pool's state back through kumo-api for the lab tests and benches: the
 * pool with its VIP, members and monitor associations, whether all of it settled (no
 * PENDING_* left: the hosting agent served the pool's latest revision), and waits on it.
 *
 * Invariant: read-only, through the HTTP API as any client; a wait fails with what it saw
 * last, never passes on an unreadable answer.
 */
import { waitFor } from './env.ts';

interface HttpClient {
  http(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export type Obj = Record<string, unknown> & { id: string; status: string };

export interface PoolView {
  pool: Obj;
  vip: Obj | null;
  members: Obj[];
  /** The pool's health_monitors_status entries. */
  monitors: { monitor_id: string; status: string }[];
}

/** GET that must answer 200: the body's `key`. */
export async function getOk<T>(c: HttpClient, path: string, key: string): Promise<T> {
  const res = await c.http('GET', path);
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

/** PUT that must answer 200 (the lab tests' one update helper). */
export async function putOk(c: HttpClient, path: string, body: unknown): Promise<void> {
  const res = await c.http('PUT', path, body);
  if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${JSON.stringify(res.body)}`);
}

export async function poolView(c: HttpClient, poolId: string): Promise<PoolView> {
  const pool = await getOk<Obj>(c, `/v2.0/lb/pools/${poolId}`, 'pool');
  const vipId = pool.vip_id as string | null;
  return {
    pool,
    vip: vipId ? await getOk<Obj>(c, `/v2.0/lb/vips/${vipId}`, 'vip') : null,
    members: await getOk<Obj[]>(c, `/v2.0/lb/members?pool_id=${poolId}`, 'members'),
    monitors: (pool.health_monitors_status ?? []) as PoolView['monitors'],
  };
}

/** Every status of the view, labelled (`pool`, `vip`, `member <address>`, `monitor <id>`). */
export function statuses(v: PoolView): [string, string][] {
  return [
    ['pool', v.pool.status],
    ...(v.vip ? [['vip', v.vip.status] as [string, string]] : []),
    ...v.members.map((m): [string, string] => [`member ${m.address}`, m.status]),
    ...v.monitors.map((m): [string, string] => [`monitor ${m.monitor_id}`, m.status]),
  ];
}

export const settled = (v: PoolView) => statuses(v).every(([, s]) => !s.startsWith('PENDING_'));

/** Waits until nothing of the pool is PENDING_*; resolves with the view. */
export async function waitSettled(c: HttpClient, poolId: string, ms = 30_000): Promise<PoolView> {
  let last: PoolView | undefined;
  try {
    return await waitFor(
      'the pool settled',
      async () => {
        last = await poolView(c, poolId);
        return settled(last) ? last : null;
      },
      ms,
      100,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last: ${JSON.stringify(last && statuses(last))}`);
  }
}

/** Waits until the member at `address` shows `status`; resolves with the ms it took. */
export async function waitMember(
  c: HttpClient,
  poolId: string,
  address: string,
  status: string,
  ms: number,
): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    `member ${address} ${status}`,
    async () =>
      (await poolView(c, poolId)).members.find((m) => m.address === address)?.status === status,
    ms,
    100,
  );
  return Date.now() - t0;
}
