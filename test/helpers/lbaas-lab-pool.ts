/**
 * A pool made through kumo-api on the LBaaS lab (test/helpers/lbaas-lab.ts), for the lab
 * files that do not walk through `neutron lb-*` themselves: the pool, one member per given
 * backend on port 80, optionally the seed's monitor (HTTP, delay 3, max_retries 3, timeout 3),
 * and a VIP on port 80 — as any API client would make them.
 *
 * Invariant: every request must succeed (201), so a lab file never runs on a half-made pool;
 * it does not wait for the agent (the caller decides what "served" means).
 */
import assert from 'node:assert/strict';
import type { Backend, LbaasLab } from './lbaas-lab.ts';
import type { Obj } from './lbaas-status.ts';

export interface LabPool {
  poolId: string;
  vip: Obj;
  /** Member ids by backend name (vm1, …). */
  memberIds: Map<string, string>;
}

/** POST /v2.0/lb/<kind>s that must answer 201: the object. */
export async function postLb(l: LbaasLab, kind: string, body: Record<string, unknown>) {
  const res = await l.c.http('POST', `/v2.0/lb/${kind}s`, { [kind]: body });
  assert.equal(res.status, 201, `POST ${kind}: ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, Obj>)[kind] as Obj;
}

export async function makePool(
  l: LbaasLab,
  name: string,
  backends: readonly Backend[],
  o: { monitor?: boolean } = {},
): Promise<LabPool> {
  const pool = await postLb(l, 'pool', {
    ...{ name, lb_method: 'ROUND_ROBIN', protocol: 'HTTP' },
    subnet_id: l.subnet.id,
  });
  const memberIds = new Map<string, string>();
  for (const b of backends) {
    const m = await postLb(l, 'member', {
      pool_id: pool.id,
      address: b.address,
      protocol_port: 80,
    });
    memberIds.set(b.name, m.id);
  }
  if (o.monitor) {
    const hm = await postLb(l, 'health_monitor', {
      ...{ type: 'HTTP', delay: 3, max_retries: 3, timeout: 3 },
    });
    const res = await l.c.http('POST', `/v2.0/lb/pools/${pool.id}/health_monitors`, {
      health_monitor: { id: hm.id },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  const vip = await postLb(l, 'vip', {
    ...{ name: `${name}-vip`, protocol: 'HTTP', protocol_port: 80 },
    ...{ subnet_id: l.subnet.id, pool_id: pool.id },
  });
  return { poolId: pool.id, vip, memberIds };
}
