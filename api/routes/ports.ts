/**
 * Neutron v2.0 ports: GET/POST /v2.0/ports, GET/PUT/DELETE /v2.0/ports/{id}.
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing (IPAM and MAC choice run in the same transaction as the port row, and so
 * does the owner's port quota). Neutron's policy (neutron-policy.ts): a non-admin sees,
 * and deletes, its own ports and those on its networks (any other is a 404, as a missing
 * one), updates only its own; creates on its own and shared networks only; never sees or
 * sets the binding attributes; sets a MAC only on create on its own network, a fixed
 * `ip_address` and a `network:*` device_owner only on its own network, and changes a
 * port's fixed_ips only on its own network (on a shared one it picks them on create).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type Network,
  type Port,
  PortCreate,
  PortUpdate,
  refuseReadOnly,
} from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import { getNetwork } from '../db/networks.ts';
import {
  createPort,
  deletePort,
  fixedIpClauses,
  getPort,
  listPorts,
  PORT_FILTERS,
  portNotFound,
  updatePort,
  visiblePorts,
} from '../db/ports.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents, hintL2Port } from '../hints.ts';
import { listScope, ownerForCreate } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { routerChanged } from '../scheduler/l3.ts';
import { sgMembersChanged } from '../sg-hints.ts';
import { visibleNetwork } from './networks.ts';
import {
  disallowed,
  HIDDEN_PORT_ATTRS,
  hideFrom,
  isAdmin,
  notOnThisNetwork,
  ownedBy,
  PORT_POLICED,
  policedAttrs,
  visibleFilters,
} from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';

type PortBody = PortCreate | ReturnType<typeof PortUpdate.parse>['port'];

/** Whether the caller may set policed attribute `attr` of `item` on a port of network `n`. */
function mayPolice(req: FastifyRequest, attr: string, item: PortBody, n: Network, create: boolean) {
  const admin = isAdmin(req);
  const netOwner = admin || ownedBy(req, n.project_id);
  switch (attr) {
    case 'mac_address':
      return create ? netOwner : admin;
    case 'fixed_ips':
      // create_port:fixed_ips admits a shared network's users (subnet_id only);
      // update_port:fixed_ips is the network owner's alone.
      return netOwner || (create && n.shared && !(item.fixed_ips ?? []).some((f) => f.ip_address));
    case 'device_owner':
      return netOwner || !(item.device_owner ?? '').startsWith('network:');
    case 'binding:vnic_type':
      return true;
    case 'port_security_enabled':
    case 'allowed_address_pairs':
      return netOwner;
    default:
      return admin;
  }
}

/** create_port / update_port with the rules of every policed attribute `item` sets. */
function authorize(req: FastifyRequest, action: string, item: PortBody, n: Network, ok = true) {
  const create = action === 'create_port';
  const attrs = policedAttrs(item, PORT_POLICED, create);
  if (!ok || attrs.some((a) => !mayPolice(req, a, item, n, create)))
    throw disallowed(action, attrs, item as Record<string, unknown>);
}

/** Whether what the firewall sees of a port (groups, port security, pairs, addresses) changed. */
function firewallChanged(a: Port, b: Port): boolean {
  const seen = (p: Port) =>
    JSON.stringify([
      p.security_groups,
      p.port_security_enabled,
      p.allowed_address_pairs,
      p.fixed_ips,
    ]);
  return seen(a) !== seen(b);
}

const shown = (req: FastifyRequest, port: Port) => hideFrom(req, port, HIDDEN_PORT_ATTRS);

function readRoutes(app: FastifyInstance, deps: AppDeps, load: Loader) {
  app.get('/v2.0/ports', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const filters = visibleFilters(req, PORT_FILTERS, HIDDEN_PORT_ATTRS);
    const q = parseListQuery(req.query, 'port', filters, { fixed_ips: fixedIpClauses });
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push(visiblePorts(scope));
    const ports = (await listPorts(deps.db, q.filter)).map((p) => shown(req, p) as Port);
    return page(req, 'ports', ports, q);
  });

  app.get(
    '/v2.0/ports/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      port: pick(shown(req, (await load(req, req.params.id)).port), values(req.query.fields)),
    }),
  );
}

type Loader = (req: FastifyRequest, id: string) => Promise<{ port: Port; network: Network }>;

export function portRoutes(app: FastifyInstance, deps: AppDeps) {
  /** get_port: admin, the port's owner or its network's owner; PortNotFound otherwise. */
  const load: Loader = async (req, id) => {
    const port = UUID.test(id) ? await getPort(deps.db, id) : undefined;
    const network = port ? await getNetwork(deps.db, port.network_id) : undefined;
    const sees = (p: Port, n: Network) =>
      isAdmin(req) || ownedBy(req, p.project_id) || ownedBy(req, n.project_id);
    if (!port || !network || !sees(port, network)) throw portNotFound(id);
    return { port, network };
  };
  readRoutes(app, deps, load);

  app.post('/v2.0/ports', async (req, reply) => {
    const body = PortCreate.parse(req.body).port;
    const network = await visibleNetwork(deps, req, body.network_id);
    const owner = ownerForCreate(req, body);
    if (!isAdmin(req) && !network.shared && !ownedBy(req, network.project_id))
      throw notOnThisNetwork(owner, 'port');
    authorize(req, 'create_port', body, network);
    const port = await createPort(
      deps.db,
      { ...body, project_id: owner },
      deps.clock.now(),
      neutronQuota(deps),
      isAdmin(req),
    );
    deps.log.info(
      { portId: port.id, networkId: port.network_id, fixedIps: port.fixed_ips },
      'port created',
    );
    void hintDhcpAgents(deps, port.network_id);
    if (port.security_groups.length) void sgMembersChanged(deps, port.security_groups);
    return reply.status(201).send({ port: shown(req, port) });
  });

  app.put('/v2.0/ports/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const before = await load(req, req.params.id);
    refuseReadOnly(req.body, 'port');
    const changes = PortUpdate.parse(req.body).port;
    const mine = isAdmin(req) || ownedBy(req, before.port.project_id);
    authorize(req, 'update_port', changes, before.network, mine);
    const port = await updatePort(deps.db, before.port.id, changes, deps.clock.now(), isAdmin(req));
    void hintL2Port(deps, port.id);
    void hintDhcpAgents(deps, port.network_id);
    if (firewallChanged(before.port, port))
      void sgMembersChanged(deps, [...before.port.security_groups, ...port.security_groups]);
    return { port: shown(req, port) };
  });

  app.delete('/v2.0/ports/:id', async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const { port } = await load(req, req.params.id);
    const routers = await deletePort(deps.db, port.id, deps.clock.now());
    deps.log.info({ portId: port.id, networkId: port.network_id }, 'port deleted');
    // Its floating IPs were disassociated: their routers drop the NAT.
    for (const routerId of routers) void routerChanged(deps, routerId);
    void hintL2Port(deps, port.id);
    void hintDhcpAgents(deps, port.network_id);
    if (port.security_groups.length) void sgMembersChanged(deps, port.security_groups);
    return reply.status(204).send();
  });
}
