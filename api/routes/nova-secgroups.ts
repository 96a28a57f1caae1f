/**
 * Nova's os-security-groups proxy (nova/api/openstack/compute/security_groups.py, below
 * 2.36; Kumo serves up to 2.16): GET /os-security-groups (the caller's project's groups)
 * and GET /servers/{id}/os-security-groups (the groups of the server's ports).
 *
 * Invariant: the shapes are Nova's conversion of Neutron's groups: ingress rules only;
 * from/to_port -1 (1 and 65535 for tcp and udp) when a protocol has no range; a rule naming
 * a remote group shows {name, tenant_id} of it and no ip_range; any other rule an ip_range
 * (0.0.0.0/0 when it has no prefix). Read-only: nothing here writes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Queryable } from '../db/index.ts';
import {
  type GroupRow,
  groupsWithRules,
  projectGroupIds,
  type RuleRow,
  serverPorts,
} from '../db/nova-secgroups.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId } from '../policy.ts';
import { installNovaErrors } from './nova.ts';
import { loadInstance } from './server-action-rules.ts';

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** Nova's ports of a rule without a range: the whole range for tcp/udp, -1 otherwise. */
function ports(r: RuleRow): [number | null, number | null] {
  const [min, max] = [num(r.port_range_min), num(r.port_range_max)];
  if (!r.protocol || min !== null || max !== null) return [min, max];
  return ['tcp', 'udp'].includes(r.protocol.toLowerCase()) ? [1, 65535] : [-1, -1];
}

function novaRule(r: RuleRow, remotes: Map<string, GroupRow>) {
  const [from, to] = ports(r);
  const remote = r.remote_group_id ? remotes.get(r.remote_group_id) : undefined;
  return {
    id: r.id,
    parent_group_id: r.security_group_id,
    ip_protocol: r.protocol,
    from_port: from,
    to_port: to,
    group: remote ? { name: remote.name, tenant_id: remote.project_id } : {},
    ip_range: r.remote_group_id ? {} : { cidr: r.remote_ip_prefix ?? '0.0.0.0/0' },
  };
}

/** The groups of `ids` in Nova's shape. */
async function novaGroups(db: Queryable, ids: readonly string[]) {
  const { groups, rules, remotes } = await groupsWithRules(db, ids);
  return groups.map((g) => ({
    id: g.id,
    name: g.name,
    description: g.description,
    tenant_id: g.project_id,
    rules: rules
      .filter((r) => r.security_group_id === g.id && r.direction === 'ingress')
      .map((r) => novaRule(r, remotes)),
  }));
}

function scopeRoutes(scope: FastifyInstance, deps: AppDeps) {
  installNovaErrors(scope, deps.log);
  scope.get('/os-security-groups', async (req) => {
    const ids = await projectGroupIds(deps.db, callerProjectId(req), deps.clock.now());
    return { security_groups: await novaGroups(deps.db, ids) };
  });
  scope.get(
    '/servers/:id/os-security-groups',
    async (req: FastifyRequest<{ Params: { id: string } }>) => {
      const inst = await loadInstance(deps, req, req.params.id);
      const ids = new Set((await serverPorts(deps.db, inst.id)).flatMap((p) => p.groups));
      return { security_groups: await novaGroups(deps.db, [...ids]) };
    },
  );
}

export function novaSecurityGroupRoutes(app: FastifyInstance, deps: AppDeps): void {
  for (const prefix of ['', '/v2.1'])
    void app.register(async (scope) => scopeRoutes(scope, deps), { prefix });
}
