/**
 * The LBaaS benches' pool, made through kumo-api's Neutron LBaaS v1 routes on the lab
 * (test/helpers/lbaas-lab.ts): an HTTP round-robin pool on the lab's subnet, its members
 * (created a few at a time), a VIP on port 80; then waits until the agent serves it: the
 * pool ACTIVE, every member in the agent's haproxy (its stats socket, named in the
 * haproxy.cfg it wrote), the VIP answering from the client namespace.
 *
 * Invariant: only the API changes state here (plus the agents' admin state); what the
 * agents build goes with the lab's destroy().
 */

import { existsSync, readFileSync } from 'node:fs';
import { showStat } from '../host/haproxy/stats.ts';
import { waitFor } from '../test/helpers/env.ts';
import type { LabHost } from '../test/helpers/lab.ts';
import type { LbaasLab } from '../test/helpers/lbaas-lab.ts';

export interface BenchMember {
  id: string;
  address: string;
  port: number;
}

export interface BenchPool {
  id: string;
  members: BenchMember[];
  vip: { id: string; address: string; port: number };
  host: LabHost;
  /** The agent's haproxy admin socket for this pool. */
  socket: string;
}

type Body = Record<string, unknown>;

async function call(l: LbaasLab, method: string, path: string, body: Body, want: number) {
  const res = await l.c.http(method, path, method === 'GET' ? undefined : body);
  if (res.status !== want)
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as Record<string, Body>;
}

/**
 * Takes every LBaaS agent but `host`'s out of scheduling (admin_state_up false), so the
 * pool lands beside the client namespace and both measured paths cross the same tunnel.
 */
export async function pinLbaasHost(l: LbaasLab, host: LabHost): Promise<void> {
  const agents = await waitFor('both LBaaS agents registered', async () => {
    const res = await l.c.http('GET', '/v2.0/agents?agent_type=Loadbalancer%20agent');
    const list = (res.body?.agents ?? []) as { id: string; host: string }[];
    return list.length >= l.lbHosts.length ? list : null;
  });
  for (const a of agents.filter((x) => x.host !== l.hostName(host)))
    await call(l, 'PUT', `/v2.0/agents/${a.id}`, { agent: { admin_state_up: false } }, 200);
}

async function createMembers(l: LbaasLab, poolId: string, targets: Omit<BenchMember, 'id'>[]) {
  const out: BenchMember[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < targets.length; i = next++) {
      const t = targets[i] as Omit<BenchMember, 'id'>;
      const body = { pool_id: poolId, address: t.address, protocol_port: t.port, weight: 1 };
      const res = await call(l, 'POST', '/v2.0/lb/members', { member: body }, 201);
      out[i] = { ...t, id: res.member?.id as string };
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return out;
}

/** The admin socket named by the haproxy.cfg the agent wrote (`stats socket <path> …`). */
export function socketOf(cfg: string): string | null {
  return /^\s*stats socket (\S+)/m.exec(cfg)?.[1] ?? null;
}

/** The config the lab names: its path (or, should the lab hand it over, its text). */
function cfgText(cfg: string | null): string | null {
  if (cfg === null) return null;
  return cfg.startsWith('/') && existsSync(cfg) ? readFileSync(cfg, 'utf8') : cfg;
}

/** Where the pool is served, once it fully is; otherwise throws what is missing yet. */
async function served(l: LbaasLab, poolId: string, members: number) {
  const host = await l.hostingHost(poolId);
  if (!host) throw new Error('no hosting agent');
  const socket = socketOf(cfgText(l.haproxyCfg(host, poolId)) ?? '');
  if (!socket) throw new Error(`no haproxy.cfg with a stats socket on ${l.hostName(host)}`);
  const pool = await call(l, 'GET', `/v2.0/lb/pools/${poolId}`, {}, 200);
  if (pool.pool?.status !== 'ACTIVE')
    throw new Error(`pool ${pool.pool?.status}: ${pool.pool?.status_description}`);
  const rows = await showStat(socket);
  const n = rows.filter((r) => r.type === 'server').length;
  if (n !== members) throw new Error(`${n} of ${members} members in haproxy`);
  return { host, socket };
}

/** Pool, members and VIP through the API; resolves once the agent serves all of it. */
export async function createPool(
  l: LbaasLab,
  targets: Omit<BenchMember, 'id'>[],
  timeoutMs = 180_000,
): Promise<BenchPool> {
  const subnet_id = l.subnet.id;
  const poolBody = { name: 'bench', subnet_id, lb_method: 'ROUND_ROBIN', protocol: 'HTTP' };
  const pool = (await call(l, 'POST', '/v2.0/lb/pools', { pool: poolBody }, 201)).pool as Body;
  const id = pool.id as string;
  const members = await createMembers(l, id, targets);
  const vipBody = { name: 'bench', subnet_id, protocol: 'HTTP', protocol_port: 80, pool_id: id };
  const vip = (await call(l, 'POST', '/v2.0/lb/vips', { vip: vipBody }, 201)).vip as Body;
  const where = await waitFor(
    `the agent serving pool ${id}`,
    () => served(l, id, members.length),
    timeoutMs,
    500,
  );
  const url = `http://${vip.address}/`;
  await waitFor('the VIP answering', () => l.curl(url).then(Boolean), 60_000, 500);
  return {
    id,
    members,
    vip: { id: vip.id as string, address: vip.address as string, port: 80 },
    ...where,
  };
}

/** PUT a member's weight through the API. */
export async function setWeight(l: LbaasLab, memberId: string, weight: number): Promise<void> {
  await call(l, 'PUT', `/v2.0/lb/members/${memberId}`, { member: { weight } }, 200);
}
