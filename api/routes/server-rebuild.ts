/**
 * rebuild (nova/api/openstack/compute/servers.py _rebuild, compute/api.py rebuild): the
 * server is made again from the same or another image. 202 with Nova's rebuild view
 * (server-views.ts shortView, as PUT answers before 2.75) in status REBUILD, plus
 * adminPass (the one given, or a new one as Nova generates it, stored).
 *
 * Invariants: the body, then the lock, Nova's states (vm_state active/stopped/error, no
 * task) and a live host are checked, in Nova's order, before anything is written; the
 * image passes the create's checks (server-refs.ts resolveImage against the server's
 * flavor); the new image, name, metadata, addresses and password are written with the
 * task in one statement, which for a non-admin also requires the server still unlocked.
 */
import type { FastifyRequest } from 'fastify';
import { RebuildAction } from '../../contracts/server-actions.ts';
import { type RebuildChanges, startRebuild } from '../db/server-changes.ts';
import type { TaskRule } from '../db/server-tasks.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { announce, checkAction, lockedRule, lostRace } from './server-action-rules.ts';
import { generatePassword } from './server-create.ts';
import { resolveImage } from './server-refs.ts';
import { shortView } from './server-views.ts';

const REBUILD = {
  name: 'rebuild',
  rule: { vm: ['active', 'stopped', 'error'], tasks: [null] } satisfies TaskRule,
};

/** The prefix ('' or '/v2.1') of the route the request came by, for the view's links. */
const prefixOf = (req: FastifyRequest) =>
  (req.routeOptions.url ?? '').startsWith('/v2.1/') ? '/v2.1' : '';

async function changesOf(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  r: RebuildAction,
) {
  const changes: RebuildChanges = {
    imageMeta: await resolveImage(deps.db, r.imageRef, inst.flavor, req),
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
  const changes = await changesOf(deps, req, inst, request);
  const rule = lockedRule(req, REBUILD.rule);
  const started = await startRebuild(deps.db, inst.id, changes, rule, deps.clock.now());
  if (!started) throw await lostRace(deps, req, inst.id, REBUILD);
  await announce(deps, started);
  const view = await shortView(deps, req, prefixOf(req), started);
  return { server: { ...view, adminPass: changes.adminPass } };
}
