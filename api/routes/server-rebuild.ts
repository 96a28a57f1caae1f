/**
 * rebuild (nova/api/openstack/compute/servers.py _rebuild, compute/api.py rebuild): the
 * server is made again from the same or another image. 202 with Nova's rebuild view
 * (the update view of 2.1 .. 2.74: no OS-EXT-*, no OS-SRV-USG, no security_groups, plain
 * addresses) in status REBUILD, plus adminPass (the one given, or a new one, stored).
 *
 * Invariants: the lock, Nova's states (vm_state active/stopped/error, no task) and a live
 * host are checked before anything is written; the image passes the create's checks
 * (server-refs.ts resolveImage against the server's flavor); the new image, name,
 * metadata, addresses and password are written with the task in one statement.
 */
import { randomInt } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { RebuildAction } from '../../contracts/server-actions.ts';
import { type RebuildChanges, startRebuild } from '../db/server-changes.ts';
import type { TaskRule } from '../db/server-tasks.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { announce, checkAction, lostRace } from './server-action-rules.ts';
import { resolveImage } from './server-refs.ts';
import { views } from './server-views.ts';

const REBUILD = {
  name: 'rebuild',
  rule: { vm: ['active', 'stopped', 'error'], tasks: [null] } satisfies TaskRule,
};

/** Nova's generate_password: 12 characters without look-alikes (0 O 1 l I). */
const PASSWORD_SYMBOLS = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
export function generatePassword(length = 12): string {
  return Array.from(
    { length },
    () => PASSWORD_SYMBOLS[randomInt(PASSWORD_SYMBOLS.length)] as string,
  ).join('');
}

/** Keys of Nova's update/rebuild view (tempest v2_1 update_server; `locked` from 2.9). */
const SHORT_KEYS = [
  'id',
  'name',
  'status',
  'image',
  'flavor',
  'fault',
  'user_id',
  'tenant_id',
  'created',
  'updated',
  'progress',
  'metadata',
  'links',
  'addresses',
  'hostId',
  'OS-DCF:diskConfig',
  'accessIPv4',
  'accessIPv6',
  'locked',
];

type Addresses = Record<string, { version: number; addr: string }[]>;

/** The update view of a detailed one: its keys, addresses without the OS-EXT-IPS ones. */
export function shortView(full: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SHORT_KEYS) if (Object.hasOwn(full, key)) out[key] = full[key];
  const addresses = (full.addresses ?? {}) as Addresses;
  out.addresses = Object.fromEntries(
    Object.entries(addresses).map(([net, list]) => [
      net,
      list.map(({ version, addr }) => ({ version, addr })),
    ]),
  );
  return out;
}

/** The prefix ('' or '/v2.1') of the route the request came by, for the view's links. */
const prefixOf = (req: FastifyRequest) =>
  (req.routeOptions.url ?? '').startsWith('/v2.1/') ? '/v2.1' : '';

async function changesOf(deps: AppDeps, inst: InstanceRecord, r: RebuildAction) {
  const changes: RebuildChanges = {
    imageMeta: await resolveImage(deps.db, r.imageRef, inst.flavor),
    adminPass: r.adminPass ?? generatePassword(),
    ...(r.name === undefined ? {} : { name: r.name }),
    ...(r.metadata === undefined ? {} : { metadata: r.metadata }),
    ...(r.accessIPv4 === undefined ? {} : { accessIPv4: r.accessIPv4 }),
    ...(r.accessIPv6 === undefined ? {} : { accessIPv6: r.accessIPv6 }),
  };
  return changes;
}

export async function rebuildServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  const request = RebuildAction.parse(body).rebuild;
  await checkAction(deps, req, inst, REBUILD);
  const changes = await changesOf(deps, inst, request);
  const started = await startRebuild(deps.db, inst.id, changes, REBUILD.rule, deps.clock.now());
  if (!started) throw await lostRace(deps, inst.id, REBUILD);
  await announce(deps, started);
  const [full] = await views(deps, req, prefixOf(req), [started]);
  return {
    server: { ...shortView(full as Record<string, unknown>), adminPass: changes.adminPass },
  };
}
