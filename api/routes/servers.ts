/**
 * Nova v2.1 servers: POST /servers, GET /servers, /servers/detail, /servers/{id},
 * PUT /servers/{id} (DELETE and the actions are in server-actions.ts, the create's
 * references in server-refs.ts, the views in server-views.ts), served at the
 * endpoint root (where the openstack client sends them with `--os-endpoint`) and under
 * /v2.1, as the flavors are.
 *
 * Invariants: a create request is checked whole — flavor, image and its kernel/ramdisk,
 * networks, ports, fixed IPs — before anything is written, so a refused one creates
 * nothing; the host pick and the row are one transaction, and the instance reaches its
 * host only with its ports (scheduler/compute.ts). Errors leave in Nova's shape.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { ServerCreate, ServerUpdate, serverStatus } from '../../contracts/servers.ts';
import {
  type FlavorSnapshot,
  type ImageMeta,
  type InstanceRecord,
  insertInstance,
  listInstances,
  type NewInstance,
  renameInstance,
} from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { type Query, values } from '../query.ts';
import {
  buildFault,
  handOverInstance,
  keptOf,
  type Nic,
  NO_VALID_HOST,
  type Placement,
  placeInstance,
} from '../scheduler/compute.ts';
import { base, installNovaErrors, links } from './nova.ts';
import { instanceNotFound, loadInstance, serverActionRoutes } from './server-actions.ts';
import { resolveFlavor, resolveImage, resolveNics } from './server-refs.ts';
import { views } from './server-views.ts';

const MAX_LIMIT = 1000;

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

/** The row of a new server: building on its host, or ERROR when none could take it. */
function newInstance(
  req: FastifyRequest,
  body: ServerCreate,
  refs: { id: string; flavor: FlavorSnapshot; imageMeta: ImageMeta; nics: Nic[] },
  p: Placement,
  now: Date,
): NewInstance {
  return {
    id: refs.id,
    name: body.name,
    projectId: DEFAULT_PROJECT_ID,
    userId: req.role,
    flavor: refs.flavor,
    imageMeta: refs.imageMeta,
    metadata: body.metadata ?? {},
    keptPorts: keptOf(refs.nics),
    host: p.host ?? '',
    vmState: p.host === null ? 'error' : 'building',
    taskState: p.host === null ? null : 'scheduling',
    fault: p.host === null ? buildFault(NO_VALID_HOST, p.reasons.join('; '), now) : null,
    accessIPv4: '',
    accessIPv6: '',
    adminPass: null,
    reservationId: '',
    launchIndex: 0,
  };
}

/** Checks the request whole, places and inserts the row, then hands it to its host. */
async function createServer(deps: AppDeps, req: FastifyRequest) {
  const body = ServerCreate.parse(req.body).server;
  const flavor = await resolveFlavor(deps.db, body.flavorRef);
  const imageMeta = await resolveImage(deps.db, body.imageRef, flavor);
  const nics = await resolveNics(deps.db, body.networks);
  const refs = { id: randomUUID(), flavor, imageMeta, nics };
  const now = deps.clock.now();
  const demand = { vcpus: flavor.vcpus, ramMb: flavor.ram, diskGb: flavor.disk };
  const placed = await placeInstance(
    deps.db,
    { now, agentDownTime: deps.settings.agentDownTime },
    demand,
    (tx, p, seq) => insertInstance(tx, seq, newInstance(req, body, refs, p, now), now),
  );
  const log = { instanceId: refs.id, host: placed.host, seq: placed.seq };
  if (placed.host === null) {
    deps.log.warn({ ...log, reasons: placed.reasons }, 'no valid host for instance');
  } else {
    deps.log.info(log, 'instance scheduled');
    await handOverInstance(deps, refs.id, placed.host, nics);
  }
  return refs.id;
}

/** GET /servers and /servers/detail: a page, with the next-page link when it is full. */
async function listServers(
  deps: AppDeps,
  req: FastifyRequest<{ Querystring: Query }>,
  prefix: string,
  detail: boolean,
) {
  const { list, next, limit } = await listFor(deps, req);
  const servers = detail
    ? await views(deps, req, prefix, list)
    : list.map((i) => ({ id: i.id, name: i.name, links: links(req, prefix, 'servers', i.id) }));
  if (next === undefined) return { servers };
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query))
    if (k !== 'marker' && k !== 'limit') for (const x of values(v)) params.append(k, x);
  params.append('limit', String(limit));
  params.append('marker', next);
  const path = `/servers${detail ? '/detail' : ''}?${params.toString()}`;
  return { servers, servers_links: [{ rel: 'next', href: `${base(req, prefix)}${path}` }] };
}

/** PUT /servers/{id}: a rename (the only attribute Kumo lets change). */
async function updateServer(deps: AppDeps, id: string, body: unknown) {
  const inst = await loadInstance(deps, id);
  const { name } = ServerUpdate.parse(body).server;
  if (name !== undefined && !(await renameInstance(deps.db, inst.id, name, deps.clock.now())))
    throw instanceNotFound(inst.id);
  return loadInstance(deps, inst.id);
}

type ById = FastifyRequest<{ Params: { id: string } }>;
type Listing = FastifyRequest<{ Querystring: Query }>;

function serverScope(scope: FastifyInstance, deps: AppDeps, prefix: string) {
  installNovaErrors(scope, deps.log);
  const one = async (req: FastifyRequest, inst: InstanceRecord) => ({
    server: (await views(deps, req, prefix, [inst]))[0],
  });
  scope.get('/servers', (req: Listing) => listServers(deps, req, prefix, false));
  scope.get('/servers/detail', (req: Listing) => listServers(deps, req, prefix, true));
  scope.get('/servers/:id', async (req: ById) => one(req, await loadInstance(deps, req.params.id)));
  scope.put('/servers/:id', async (req: ById) =>
    one(req, await updateServer(deps, req.params.id, req.body)),
  );
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
}

export function serverRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const prefix of ['', '/v2.1'])
    void app.register(async (scope) => serverScope(scope, deps, prefix), { prefix });
}
