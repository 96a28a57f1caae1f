/**
 * The dashboard's agents page as one read: every agent (as `GET /v2.0/agents` shows it,
 * failures included) with what it hosts — networks (DHCP), routers (L3), pools (LBaaS),
 * volumes (volume agents) and instances (compute agents) — by id and name.
 *
 * Invariants: read-only, a handful of queries whatever the number of agents (the page
 * lists hundreds; one query per agent would not do); agents are admin-only as in Neutron,
 * so a non-admin caller gets an empty overview, never another project's placement.
 */
import { type Agent, agentTypeByKind } from '../../contracts/agents.ts';
import { listAgents } from '../db/agents.ts';
import type { Queryable } from '../db/index.ts';

export interface Hosted {
  id: string;
  name: string;
  status?: string;
}

export interface HostedSets {
  networks: Hosted[];
  routers: Hosted[];
  pools: Hosted[];
  volumes: Hosted[];
  instances: Hosted[];
}

export interface AgentOverview extends Agent {
  hosting: HostedSets;
}

type Row = { owner: string; id: string; name: string | null; status?: string | null };

/** By agent id (bindings) or by host (volumes, instances): owner → hosted items. */
const BY_AGENT = {
  networks: `SELECT b.agent_id AS owner, n.id, n.name, n.status FROM network_dhcp_agent_bindings b
              JOIN networks n ON n.id = b.network_id ORDER BY n.name, n.id`,
  routers: `SELECT b.agent_id AS owner, r.id, r.name, r.status FROM router_l3_agent_bindings b
             JOIN routers r ON r.id = b.router_id ORDER BY r.name, r.id`,
  pools: `SELECT b.agent_id AS owner, p.id, p.name, p.status FROM pool_loadbalancer_agent_bindings b
           JOIN lb_pools p ON p.id = b.pool_id ORDER BY p.name, p.id`,
} as const;
const BY_HOST = {
  volumes: `SELECT host AS owner, id, name, status FROM volumes WHERE host IS NOT NULL
             ORDER BY name, id`,
  instances: `SELECT host AS owner, id, name, vm_state AS status FROM instances
               WHERE deleted_at IS NULL ORDER BY name, id`,
} as const;
/** Which agent types host by host name rather than by a binding row. */
const HOST_KEYED: Record<string, keyof typeof BY_HOST> = {
  [agentTypeByKind('volume').agentType]: 'volumes',
  [agentTypeByKind('compute').agentType]: 'instances',
};

async function grouped(db: Queryable, sql: string): Promise<Map<string, Hosted[]>> {
  const out = new Map<string, Hosted[]>();
  for (const r of await db.query<Row>(sql)) {
    const list = out.get(r.owner) ?? [];
    list.push({ id: r.id, name: r.name ?? '', ...(r.status ? { status: r.status } : {}) });
    out.set(r.owner, list);
  }
  return out;
}

const emptySets = (): HostedSets => ({
  networks: [],
  routers: [],
  pools: [],
  volumes: [],
  instances: [],
});

/** Every agent with what it hosts; [] for a caller that may not see agents. */
export async function agentOverview(
  db: Queryable,
  opts: { admin: boolean; now: Date; downTime: number },
): Promise<AgentOverview[]> {
  if (!opts.admin) return [];
  const agents = await listAgents(db, {}, opts.now, opts.downTime);
  const byAgent = {
    networks: await grouped(db, BY_AGENT.networks),
    routers: await grouped(db, BY_AGENT.routers),
    pools: await grouped(db, BY_AGENT.pools),
  };
  const byHost = {
    volumes: await grouped(db, BY_HOST.volumes),
    instances: await grouped(db, BY_HOST.instances),
  };
  return agents.map((a) => {
    const hosting = emptySets();
    for (const kind of ['networks', 'routers', 'pools'] as const)
      hosting[kind] = byAgent[kind].get(a.id) ?? [];
    const hostKind = HOST_KEYED[a.agent_type];
    if (hostKind) hosting[hostKind] = byHost[hostKind].get(a.host) ?? [];
    return { ...a, hosting };
  });
}
