/**
 * Nova v2.1 servers: POST /servers, GET /servers, /servers/detail, /servers/{id},
 * PUT /servers/{id} (DELETE and the actions are in server-actions.ts), served at the
 * endpoint root (where the openstack client sends them with `--os-endpoint`) and under
 * /v2.1, as the flavors are.
 *
 * Invariants: a create request is checked whole — flavor, image and its kernel/ramdisk,
 * networks, ports, fixed IPs — before anything is written, so a refused one creates
 * nothing; the host pick and the row are one transaction, and the instance reaches its
 * host only with its ports (scheduler/compute.ts). Errors leave in Nova's shape.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { ServerCreate, ServerUpdate, serverStatus } from '../../contracts/servers.ts';
import type { AppDeps } from '../app.ts';
import {
  type InstanceRecord,
  inPortOrder,
  insertInstance,
  listInstances,
  renameInstance,
} from '../db/servers.ts';
import { type Query, values } from '../query.ts';
import {
  buildFault,
  handOverInstance,
  keptOf,
  NO_VALID_HOST,
  placeInstance,
} from '../scheduler/compute.ts';
import { installNovaErrors } from './flavors.ts';
import {
  instanceNotFound,
  loadInstance,
  resolveFlavor,
  resolveImage,
  resolveNics,
  serverActionRoutes,
} from './server-actions.ts';

const MAX_LIMIT = 1000;

const base = (req: FastifyRequest, prefix: string) =>
  `${req.protocol}://${req.headers.host ?? req.hostname}${prefix}`;
const links = (req: FastifyRequest, prefix: string, kind: string, id: string) => [
  { rel: 'self', href: `${base(req, prefix)}/${kind}/${encodeURIComponent(id)}` },
  { rel: 'bookmark', href: `${base(req, '')}/${kind}/${encodeURIComponent(id)}` },
];
const bookmark = (req: FastifyRequest, kind: string, id: string) => ({
  id,
  links: [{ rel: 'bookmark', href: `${base(req, '')}/${kind}/${encodeURIComponent(id)}` }],
});
/** Nova's OS-SRV-USG timestamps: `2026-11-22T10:00:00.000000`. */
const usage = (t: string | null) => (t === null ? null : `${t.slice(0, 19)}.000000`);

type Addresses = Record<string, { version: 4 | 6; addr: string; [k: string]: unknown }[]>;

/** addresses per instance: {network name: [fixed IPs with the port's MAC]}, NIC order. */
async function addressesOf(deps: AppDeps, list: InstanceRecord[]) {
  const out = new Map<string, Addresses>(list.map((i) => [i.id, {}]));
  if (list.length === 0) return out;
  const rows = await deps.db.query<{
    id: string;
    device_id: string;
    mac_address: string;
    ip_address: string;
    name: string;
    network_id: string;
  }>(
    `SELECT p.id, p.device_id, p.mac_address, a.ip_address, n.name, n.id AS network_id
       FROM ports p JOIN networks n ON n.id = p.network_id
       JOIN ipallocations a ON a.port_id = p.id
      WHERE p.device_id IN (${list.map(() => '?').join(', ')})
      ORDER BY p.created_at, p.id, a.ip_address`,
    list.map((i) => i.id),
  );
  const byDevice = Map.groupBy(rows, (r) => r.device_id);
  for (const inst of list) {
    const addresses = out.get(inst.id) as Addresses;
    for (const r of inPortOrder(inst.portOrder, byDevice.get(inst.id) ?? [])) {
      const label = r.name || r.network_id;
      addresses[label] ??= [];
      addresses[label].push({
        version: r.ip_address.includes(':') ? 6 : 4,
        addr: r.ip_address,
        'OS-EXT-IPS:type': 'fixed',
        'OS-EXT-IPS-MAC:mac_addr': r.mac_address,
      });
    }
  }
  return out;
}

function serverView(req: FastifyRequest, prefix: string, i: InstanceRecord, addr: Addresses) {
  const admin = req.role === 'admin';
  const status = serverStatus(i.vmState, i.taskState);
  const host = i.host || null;
  const view: Record<string, unknown> = {
    id: i.id,
    name: i.name,
    status,
    tenant_id: i.projectId,
    user_id: i.userId,
    metadata: i.metadata,
    hostId: i.host
      ? createHash('sha224')
          .update(i.projectId + i.host)
          .digest('hex')
      : '',
    image: bookmark(req, 'images', i.imageId),
    flavor: bookmark(req, 'flavors', i.flavor.id),
    created: i.createdAt,
    updated: i.updatedAt,
    addresses: addr,
    accessIPv4: '',
    accessIPv6: '',
    links: links(req, prefix, 'servers', i.id),
    'OS-DCF:diskConfig': 'MANUAL',
    progress: 0,
    'OS-EXT-AZ:availability_zone': 'nova',
    config_drive: '',
    key_name: null,
    'OS-SRV-USG:launched_at': usage(i.launchedAt),
    'OS-SRV-USG:terminated_at': usage(i.deletedAt),
    'OS-EXT-STS:task_state': i.taskState,
    'OS-EXT-STS:vm_state': i.vmState,
    'OS-EXT-STS:power_state': i.powerState,
    'os-extended-volumes:volumes_attached': [],
    security_groups: [{ name: 'default' }],
    'kumo:spawn_timings': i.timings,
  };
  if (admin) {
    view['OS-EXT-SRV-ATTR:host'] = host;
    view['OS-EXT-SRV-ATTR:instance_name'] = `instance-${i.seq.toString(16).padStart(8, '0')}`;
    view['OS-EXT-SRV-ATTR:hypervisor_hostname'] = host;
  }
  if (status === 'ERROR' && i.fault) {
    const { code, message, created, details } = i.fault;
    view.fault = admin
      ? { code, message, created, details: details ?? '' }
      : { code, message, created };
  }
  return view;
}

/** Nova's name filter is a regex; here: a literal substring, `^` / `$` anchor it. */
function nameMatcher(raw: string): (name: string) => boolean {
  const start = raw.startsWith('^');
  const end = raw.endsWith('$') && raw.length > (start ? 1 : 0);
  const text = raw.slice(start ? 1 : 0, end ? -1 : undefined);
  return (name) =>
    start && end
      ? name === text
      : start
        ? name.startsWith(text)
        : end
          ? name.endsWith(text)
          : name.includes(text);
}

function limitOf(raw: string | undefined): number {
  if (raw === undefined) return MAX_LIMIT;
  if (!/^\d{1,9}$/.test(raw))
    throw new ApiError('BadRequest', `Invalid input for query parameter limit: '${raw}'.`);
  return Math.min(Number(raw), MAX_LIMIT);
}

/** The servers a list query selects, and the next-page marker when the page is full. */
async function listFor(deps: AppDeps, req: FastifyRequest<{ Querystring: Query }>) {
  const q = req.query;
  const one = (k: string) => values(q[k])[0];
  const hosts = req.role === 'admin' && q.host !== undefined ? values(q.host) : undefined;
  let list = await listInstances(deps.db, hosts ? { hosts } : {});
  const name = one('name');
  if (name !== undefined) {
    const matches = nameMatcher(name);
    list = list.filter((i) => matches(i.name));
  }
  const statuses = values(q.status).map((s) => s.toUpperCase());
  if (statuses.length)
    list = list.filter((i) => statuses.includes(serverStatus(i.vmState, i.taskState)));
  for (const [key, of] of [
    ['flavor', (i: InstanceRecord) => i.flavor.id],
    ['image', (i: InstanceRecord) => i.imageId],
  ] as const) {
    const v = one(key);
    if (v !== undefined) list = list.filter((i) => of(i) === v);
  }
  const marker = one('marker');
  if (marker !== undefined) {
    const at = list.findIndex((i) => i.id === marker);
    if (at < 0) throw new ApiError('BadRequest', `marker [${marker}] not found`);
    list = list.slice(at + 1);
  }
  const limit = limitOf(one('limit'));
  const next = list.length > limit ? list[limit - 1]?.id : undefined;
  return { list: list.slice(0, limit), next, limit };
}

async function createServer(deps: AppDeps, req: FastifyRequest) {
  const body = ServerCreate.parse(req.body).server;
  const flavor = await resolveFlavor(deps.db, body.flavorRef);
  const imageMeta = await resolveImage(deps.db, body.imageRef, flavor);
  const nics = await resolveNics(deps.db, body.networks);
  const id = randomUUID();
  const now = deps.clock.now();
  const demand = { vcpus: flavor.vcpus, ramMb: flavor.ram, diskGb: flavor.disk };
  const placed = await placeInstance(
    deps.db,
    { now, agentDownTime: deps.settings.agentDownTime },
    demand,
    (tx, p, seq) =>
      insertInstance(
        tx,
        seq,
        {
          id,
          name: body.name,
          projectId: DEFAULT_PROJECT_ID,
          userId: req.role,
          flavor,
          imageMeta,
          metadata: body.metadata ?? {},
          keptPorts: keptOf(nics),
          host: p.host ?? '',
          vmState: p.host === null ? 'error' : 'building',
          taskState: p.host === null ? null : 'scheduling',
          fault: p.host === null ? buildFault(NO_VALID_HOST, p.reasons.join('; '), now) : null,
        },
        now,
      ),
  );
  if (placed.host === null) {
    deps.log.warn({ instanceId: id, reasons: placed.reasons }, 'no valid host for instance');
  } else {
    deps.log.info({ instanceId: id, host: placed.host, seq: placed.seq }, 'instance scheduled');
    await handOverInstance(deps, id, placed.host, nics);
  }
  return id;
}

export function serverRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const prefix of ['', '/v2.1']) {
    void app.register(
      async (scope) => {
        installNovaErrors(scope, deps.log);
        const views = async (req: FastifyRequest, list: InstanceRecord[]) => {
          const addr = await addressesOf(deps, list);
          return list.map((i) => serverView(req, prefix, i, addr.get(i.id) ?? {}));
        };
        const listed = async (req: FastifyRequest<{ Querystring: Query }>, detail: boolean) => {
          const { list, next, limit } = await listFor(deps, req);
          const servers = detail
            ? await views(req, list)
            : list.map((i) => ({
                id: i.id,
                name: i.name,
                links: links(req, prefix, 'servers', i.id),
              }));
          const body: Record<string, unknown> = { servers };
          if (next === undefined) return body;
          const params = new URLSearchParams();
          for (const [k, v] of Object.entries(req.query))
            if (k !== 'marker' && k !== 'limit') for (const x of values(v)) params.append(k, x);
          params.append('limit', String(limit));
          params.append('marker', next);
          const path = `/servers${detail ? '/detail' : ''}?${params.toString()}`;
          body.servers_links = [{ rel: 'next', href: `${base(req, prefix)}${path}` }];
          return body;
        };

        scope.get('/servers', (req: FastifyRequest<{ Querystring: Query }>) => listed(req, false));
        scope.get('/servers/detail', (req: FastifyRequest<{ Querystring: Query }>) =>
          listed(req, true),
        );
        scope.get('/servers/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
          const [server] = await views(req, [await loadInstance(deps, req.params.id)]);
          return { server };
        });
        scope.put('/servers/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
          const inst = await loadInstance(deps, req.params.id);
          const { name } = ServerUpdate.parse(req.body).server;
          if (
            name !== undefined &&
            !(await renameInstance(deps.db, inst.id, name, deps.clock.now()))
          )
            throw instanceNotFound(inst.id);
          const [server] = await views(req, [await loadInstance(deps, inst.id)]);
          return { server };
        });
        scope.post('/servers', async (req, reply) => {
          const id = await createServer(deps, req);
          return reply.status(202).send({
            server: {
              id,
              links: links(req, prefix, 'servers', id),
              'OS-DCF:diskConfig': 'MANUAL',
              security_groups: [{ name: 'default' }],
            },
          });
        });
        serverActionRoutes(scope, deps);
      },
      { prefix },
    );
  }
}
