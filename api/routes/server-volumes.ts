/**
 * Nova's os-volume_attachments (v2.1 shapes: `volumeAttachment {device, id, serverId,
 * volumeId}`, the id being the volume's): list, show, attach (200), detach (202), with
 * Cinder's attachment records behind them (volume_attachments).
 *
 * Invariants:
 * - the server is the caller's (404 as Nova words it otherwise), not locked against the
 *   caller, in a vm_state Nova attaches/detaches in with no task (409), on a host whose
 *   compute agent is alive (409) and reports its iSCSI initiator name (409 with why);
 * - the volume is the server's project's (another project's is answered as a missing
 *   one: 404) and `available` for an attach (Cinder's 400 "Invalid volume"); a detach
 *   needs an `attached` attachment (400 otherwise, 404 when there is none);
 * - nothing user-supplied reaches an agent unvalidated: the volume id is a uuid, the
 *   device one of /dev/vdb…/dev/vdz, the initiator the agent's own report matching
 *   INITIATOR_IQN;
 * - an attach hints the volume's storage host (its ACL must admit the initiator), a
 *   detach the server's compute host (it unplugs first, the ACL goes after).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { nullable, obj, optional, str, UUID, uuid } from '../../contracts/schema.ts';
import { INITIATOR_IQN } from '../../contracts/volume.ts';
import type { Queryable } from '../db/index.ts';
import type { InstanceRecord } from '../db/servers.ts';
import {
  type AttachmentRow,
  type AttachResult,
  attachVolume,
  instanceAttachments,
  startDetach,
} from '../db/volume-attachments.ts';
import type { AppDeps } from '../deps.ts';
import { hintInstance, hintVolume } from '../hints.ts';
import { owns } from '../policy.ts';
import { COMPUTE_AGENT } from '../scheduler/compute.ts';
import {
  allows,
  bad,
  checkLock,
  conflict,
  invalidState,
  liveHost,
  loadInstance,
  lostRace,
} from './server-action-rules.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type ByVolume = FastifyRequest<{ Params: { id: string; volumeId: string } }>;

const DEVICE = /^\/dev\/vd[b-z]$/;
const AttachBody = obj({
  volumeAttachment: obj({
    volumeId: uuid(),
    device: optional(nullable(str({ pattern: DEVICE, patternName: 'a device /dev/vdb…/dev/vdz' }))),
  }),
});

/** Nova's check_instance_state for attach_volume / detach_volume (no shelve, no resize). */
const ATTACH = {
  name: 'attach_volume',
  rule: { vm: ['active', 'paused', 'stopped'], tasks: [null] },
} as const;
const DETACH = {
  name: 'detach_volume',
  rule: { vm: ['active', 'paused', 'suspended', 'stopped'], tasks: [null] },
} as const;

const view = (a: Pick<AttachmentRow, 'device' | 'volume_id' | 'instance_uuid'>) => ({
  device: `/dev/${a.device}`,
  id: a.volume_id,
  serverId: a.instance_uuid,
  volumeId: a.volume_id,
});

const volumeNotFound = (id: string) => new ApiError('NotFound', `Volume ${id} could not be found.`);
const noMapping = (id: string) =>
  new ApiError('NotFound', `No volume Block Device Mapping with id ${id}.`);

/** The volume as the server's owner may see it (404 otherwise). */
async function loadVolume(db: Queryable, req: FastifyRequest, inst: InstanceRecord, id: string) {
  const [v] = await db.query<{ project_id: string; status: string; host: string | null }>(
    'SELECT project_id, status, host FROM volumes WHERE id = ?',
    [id],
  );
  if (!v || v.project_id !== inst.projectId || !owns(req, v.project_id)) throw volumeNotFound(id);
  return v;
}

/** The iSCSI initiator name the compute agent of `host` reports (409 when none). */
async function initiatorOf(db: Queryable, host: string): Promise<string> {
  const [row] = await db.query<{ configurations: string }>(
    'SELECT configurations FROM agents WHERE agent_type = ? AND host = ?',
    [COMPUTE_AGENT.agentType, host],
  );
  const name =
    row && (JSON.parse(row.configurations) as { iscsi_initiator?: unknown }).iscsi_initiator;
  if (typeof name !== 'string' || !INITIATOR_IQN.test(name))
    throw conflict(
      `The compute agent on ${host} reports no iSCSI initiator name ([compute] iscsi_initiator_name); volumes cannot be attached there.`,
    );
  return name;
}

/** A rule as the action helpers take it (mutable arrays). */
const ruleOf = (spec: typeof ATTACH | typeof DETACH) => ({
  vm: [...spec.rule.vm],
  tasks: [...spec.rule.tasks],
});

/** Nova's checks of the server before an attach or detach; its compute host. */
async function checkServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  spec: typeof ATTACH | typeof DETACH,
) {
  checkLock(req, inst);
  const rule = ruleOf(spec);
  if (!allows(rule, inst)) throw invalidState({ name: spec.name, rule }, inst);
  return liveHost(deps, inst);
}

/** Nova's (and Cinder's, passed through) words for a refused attach. */
function attachRefusal(
  r: Exclude<Extract<AttachResult, { error: string }>, { error: 'server_state' }>,
  device?: string | null,
) {
  switch (r.error) {
    case 'in_use':
      return bad(`The supplied device path (${device}) is in use.`);
    case 'none_free':
      return bad("No free disk device names for prefix 'vd'");
    case 'volume_status':
      return bad(
        `Invalid volume: Volume status must be available to reserve, but the current status is ${r.status}.`,
      );
  }
}

async function attach(deps: AppDeps, req: ById) {
  const inst = await loadInstance(deps, req, req.params.id);
  const body = AttachBody.parse(req.body).volumeAttachment;
  const host = await checkServer(deps, req, inst, ATTACH);
  await loadVolume(deps.db, req, inst, body.volumeId);
  const initiator = await initiatorOf(deps.db, host);
  const device = body.device ? body.device.slice('/dev/'.length) : undefined;
  const request = { volumeId: body.volumeId, instanceId: inst.id, host, initiator, device };
  const r = await attachVolume(deps.db, request, deps.clock.now());
  if ('error' in r)
    throw r.error === 'server_state'
      ? await lostRace(deps, req, inst.id, { name: ATTACH.name, rule: ruleOf(ATTACH) })
      : attachRefusal(r, body.device);
  deps.log.info(
    {
      instanceId: inst.id,
      volumeId: body.volumeId,
      attachmentId: r.attachmentId,
      device: r.device,
    },
    'volume attach requested',
  );
  if (r.volume.host) await hintVolume(deps, r.volume.host, r.volume.id, r.volume.revision);
  return {
    volumeAttachment: view({ device: r.device, volume_id: body.volumeId, instance_uuid: inst.id }),
  };
}

async function detach(deps: AppDeps, req: ByVolume, reply: FastifyReply) {
  const inst = await loadInstance(deps, req, req.params.id);
  const volumeId = req.params.volumeId;
  if (!UUID.test(volumeId)) throw volumeNotFound(volumeId);
  await loadVolume(deps.db, req, inst, volumeId);
  const host = await checkServer(deps, req, inst, DETACH);
  const r = await startDetach(deps.db, inst.id, volumeId, deps.clock.now());
  if ('error' in r) {
    if (r.error === 'not_attached') throw noMapping(volumeId);
    throw bad(
      "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.",
    );
  }
  deps.log.info({ instanceId: inst.id, volumeId }, 'volume detach requested');
  await hintInstance(deps, host, inst.id, inst.taskId);
  return reply.status(202).send();
}

async function list(deps: AppDeps, req: ById) {
  const inst = await loadInstance(deps, req, req.params.id);
  return { volumeAttachments: (await instanceAttachments(deps.db, inst.id)).map(view) };
}

async function show(deps: AppDeps, req: ByVolume) {
  const inst = await loadInstance(deps, req, req.params.id);
  const found = (await instanceAttachments(deps.db, inst.id)).find(
    (a) => a.volume_id === req.params.volumeId,
  );
  if (!found) throw noMapping(req.params.volumeId);
  return { volumeAttachment: view(found) };
}

/** Registers the routes in a server scope (servers.ts, under both prefixes). */
export function serverVolumeRoutes(scope: FastifyInstance, deps: AppDeps) {
  const base = '/servers/:id/os-volume_attachments';
  scope.get(base, (req: ById) => list(deps, req));
  scope.get(`${base}/:volumeId`, (req: ByVolume) => show(deps, req));
  scope.post(base, (req: ById) => attach(deps, req));
  scope.delete(`${base}/:volumeId`, (req: ByVolume, reply) => detach(deps, req, reply));
}
