/**
 * POST /v3/{project}/volumes/{id}/action: os-extend (owner), os-reset_status and
 * os-force_delete (admin), each answering 202 with no body as Cinder does.
 *
 * Invariants: the body names exactly one known action and is checked whole first; an
 * extend grows an `available` volume only (shrinking or keeping the size is a 400), its
 * added gigabytes checked against the quota in the transaction that moves it to
 * `extending` (revision bumped, its host hinted); a reset writes the status alone (no
 * host is asked anything, as Cinder's reset touches only the database), except a reset
 * to attach_status detached, which drops the attachments and has the storage host drop
 * the ACL (the way out of a stuck attach); a forced delete
 * skips the status rule but never deletes an attached volume or one with snapshots.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { VolumeStatus } from '../../contracts/volume.ts';
import { parseVolumeAction } from '../../contracts/volume-api.ts';
import { detachAll } from '../db/volume-attachments.ts';
import { admitCinder } from '../db/volume-quotas.ts';
import { moveVolume, resetVolumeStatus, type VolumeRecord } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { hintInstance, hintVolume } from '../hints.ts';
import { type ById, pathProject, requireAdminCinder, volumeNotFound } from './cinder-common.ts';
import { cinderQuotaDefaults } from './volume-create.ts';
import { FORCE_DELETABLE, loadVolume, startDelete } from './volume-delete.ts';

async function extend(deps: AppDeps, v: VolumeRecord, newSize: number) {
  if (v.status !== 'available')
    throw new ApiError(
      'BadRequest',
      `Invalid volume: Volume ${v.id} status must be available to extend, but current status is: ${v.status}.`,
    );
  if (newSize <= v.size)
    throw new ApiError(
      'BadRequest',
      `Invalid input received: New size for extend must be greater than current size. (current: ${v.size}, extended: ${newSize}).`,
    );
  const rev = await deps.db.transaction(async (tx) => {
    await admitCinder(tx, deps.db.engine, v.project_id, cinderQuotaDefaults(deps), {
      kind: 'volumes',
      count: 0,
      gigabytes: newSize - v.size,
      volumeSize: newSize,
    });
    const moved = { to: 'extending', serve: true, extendSize: newSize } as const;
    return moveVolume(tx, v.id, ['available'], moved, deps.clock.now());
  });
  if (rev === undefined)
    throw new ApiError('BadRequest', `Invalid volume: Volume ${v.id} changed status; try again.`);
  deps.log.info({ volumeId: v.id, size: newSize, revision: rev }, 'volume extend started');
  if (v.host) await hintVolume(deps, v.host, v.id, rev);
}

/** attach_status detached: the attachments go, the volume is bumped to `status`, all hinted. */
async function resetDetached(deps: AppDeps, v: VolumeRecord, status: VolumeStatus) {
  const r = await detachAll(deps.db, v.id, status, deps.clock.now());
  if (!r) throw volumeNotFound(v.id);
  deps.log.info(
    { volumeId: v.id, from: v.status, to: status, revision: r.volume.revision },
    'volume attachments reset to detached',
  );
  if (r.volume.host) await hintVolume(deps, r.volume.host, v.id, r.volume.revision);
  for (const i of r.instances) await hintInstance(deps, i.host, i.id, i.taskId);
}

async function act(deps: AppDeps, req: ById) {
  const action = parseVolumeAction(req.body);
  const v = await loadVolume(deps, req, req.params.id);
  switch (action.action) {
    case 'os-extend':
      return extend(deps, v, action.newSize);
    case 'os-reset_status': {
      requireAdminCinder(req, 'volume_extension:volume_admin_actions:reset_status');
      if (action.attachStatus === 'detached')
        return resetDetached(deps, v, action.status ?? 'available');
      if (action.attachStatus !== undefined || action.status === undefined)
        throw new ApiError(
          'BadRequest',
          'Invalid input received: attach_status can only be reset to detached; attachments follow Nova os-volume_attachments.',
        );
      if (!(await resetVolumeStatus(deps.db, v.id, action.status, deps.clock.now())))
        throw volumeNotFound(v.id);
      deps.log.info({ volumeId: v.id, from: v.status, to: action.status }, 'volume status reset');
      return;
    }
    case 'os-force_delete': {
      requireAdminCinder(req, 'volume_extension:volume_admin_actions:force_delete');
      const rev = await startDelete(deps, v, FORCE_DELETABLE);
      deps.log.info({ volumeId: v.id, revision: rev ?? null }, 'volume force delete started');
      if (rev !== undefined && v.host) await hintVolume(deps, v.host, v.id, rev);
    }
  }
}

export function volumeActionRoutes(scope: FastifyInstance, deps: AppDeps) {
  scope.post('/v3/:project_id/volumes/:id/action', async (req: ById, reply) => {
    pathProject(req);
    await act(deps, req);
    return reply.status(202).send();
  });
}
