/**
 * The kumo CLI's LBaaS v1 commands in-process with a fake fetch (`run`, from cli-fake.ts):
 * fixtures (ids, a pool view) and `byName`, which answers the ?name= lookups of a pool
 * `web` and a subnet `private`.
 *
 * Invariant: no request leaves the process (cli-fake.ts).
 */
import type { Call, Reply } from './cli-fake.ts';

export { AUTH, type Call, type Reply, run } from './cli-fake.ts';

export const API = 'http://kumo.test:9696';
export const POOL_ID = '11111111-0000-4000-8000-000000000001';
export const SUBNET_ID = '22222222-0000-4000-8000-000000000002';
export const MEMBER_ID = '33333333-0000-4000-8000-000000000003';
export const HM_ID = '44444444-0000-4000-8000-000000000004';
export const VIP_ID = '55555555-0000-4000-8000-000000000005';

/** Answers ?name= lookups of pools and subnets, and `answer` for everything else. */
export function byName(answer: (c: Call) => Reply) {
  return (c: Call): Reply => {
    if (c.url.includes('/v2.0/lb/pools?name=web'))
      return { status: 200, body: { pools: [{ id: POOL_ID }] } };
    if (c.url.includes('/v2.0/subnets?name=private'))
      return { status: 200, body: { subnets: [{ id: SUBNET_ID }] } };
    return answer(c);
  };
}

export const pool = {
  id: POOL_ID,
  tenant_id: 'p1',
  name: 'web',
  description: '',
  subnet_id: SUBNET_ID,
  protocol: 'HTTP',
  lb_method: 'ROUND_ROBIN',
  provider: 'haproxy',
  vip_id: null,
  members: [MEMBER_ID],
  health_monitors: [HM_ID],
  health_monitors_status: [{ monitor_id: HM_ID, status: 'ACTIVE', status_description: null }],
  admin_state_up: true,
  status: 'PENDING_CREATE',
  status_description: null,
};

/** The field names of a Field/Value table, in order. */
export const fieldsOf = (out: string) => [...out.matchAll(/^\| ([a-z_]+) +\|/gm)].map((m) => m[1]);
