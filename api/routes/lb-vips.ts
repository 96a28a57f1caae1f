/**
 * Neutron LBaaS v1 VIPs: /v2.0/lb/vips (list, show, create, update, delete).
 *
 * Invariants: a body is validated whole before anything is written; the VIP's pool (and
 * the pool a move names) is one the caller may act on (PoolNotFound), its subnet one the
 * caller sees (SubnetNotFound); the VIP's port is made and removed in the VIP's own
 * transaction (lbaas-vips.ts), and its coming and going is told as any port's (DHCP
 * agents, security group members, its floating IPs' routers); a move tells both pools'
 * agents.
 */
import type { FastifyInstance } from 'fastify';
import { VipCreate, VipUpdate } from '../../contracts/lbaas-api.ts';
import type { Port } from '../../contracts/network.ts';
import { getView, listVips, poolNotFound, VIP_FILTERS, vipNotFound } from '../db/lbaas.ts';
import { createVip, deleteVip, updateVip } from '../db/lbaas-vips.ts';
import { getPort } from '../db/ports.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents } from '../hints.ts';
import { ownerForCreate } from '../policy.ts';
import { routerChanged } from '../scheduler/l3.ts';
import { sgMembersChanged } from '../sg-hints.ts';
import { type ById, loader, readRoutes, tell, visibleSubnet } from './lb-common.ts';
import { canonicalAddress } from './lb-members.ts';
import { neutronQuota } from './neutron-quotas.ts';

/**
 * The VIP's port came or went: as for any port (api/routes/ports.ts), its network's DHCP
 * agents and the hosts of its security groups' members hear of it, and the routers of
 * floating IPs it lost drop their NAT.
 */
function portNews(deps: AppDeps, port: Port | undefined, routers: readonly string[] = []) {
  for (const routerId of routers) void routerChanged(deps, routerId);
  if (!port) return;
  void hintDhcpAgents(deps, port.network_id);
  if (port.security_groups.length) void sgMembersChanged(deps, port.security_groups);
}

export function lbVipRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = loader(deps, 'lb_vips', vipNotFound);
  const loadPool = loader(deps, 'lb_pools', poolNotFound);
  readRoutes(
    app,
    deps,
    {
      collection: 'vips',
      member: 'vip',
      filters: VIP_FILTERS,
      list: listVips,
      canonical: canonicalAddress,
    },
    load,
  );

  app.post('/v2.0/lb/vips', async (req, reply) => {
    const body = VipCreate.parse(req.body).vip;
    const owner = ownerForCreate(req, body);
    await loadPool(req, body.pool_id);
    await visibleSubnet(deps, req, body.subnet_id);
    const id = await createVip(
      deps.db,
      { ...body, project_id: owner },
      deps.clock.now(),
      neutronQuota(deps),
    );
    const vip = await getView(deps.db, 'lb_vips', id);
    deps.log.info({ vipId: id, poolId: body.pool_id, portId: vip?.port_id }, 'vip created');
    await tell(deps, body.pool_id);
    portNews(deps, await getPort(deps.db, String(vip?.port_id)));
    return reply.status(201).send({ vip });
  });

  app.put('/v2.0/lb/vips/:id', async (req: ById) => {
    const vip = await load(req, req.params.id);
    const changes = VipUpdate.parse(req.body).vip;
    if (changes.pool_id !== undefined) await loadPool(req, changes.pool_id);
    const id = String(vip.id);
    const pools = await updateVip(deps.db, id, changes, deps.clock.now());
    deps.log.info({ vipId: id, pools }, 'vip updated');
    await tell(deps, ...pools);
    return { vip: await load(req, id) };
  });

  app.delete('/v2.0/lb/vips/:id', async (req: ById, reply) => {
    const vip = await load(req, req.params.id);
    const port = await getPort(deps.db, String(vip.port_id));
    const { pool, routers } = await deleteVip(deps.db, String(vip.id), deps.clock.now());
    deps.log.info({ vipId: vip.id, poolId: pool, portId: vip.port_id, routers }, 'vip deleted');
    await tell(deps, pool);
    portNews(deps, port, routers);
    return reply.status(204).send();
  });
}
