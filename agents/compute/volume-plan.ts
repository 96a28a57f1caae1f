/**
 * The volumes of one instance: its spec's attachments (InstanceSpec.volumes) against the
 * iSCSI disks of its domain and this host's `kumo-attachment-*` secrets → steps, and the
 * attachment statuses a reconcile reports. Pure.
 *
 * Invariants:
 * - the secret of an `attach` entry is made before the instance's own steps (a define or
 *   a start of a domain whose XML names it needs it); its disk is hot-plugged after them
 *   (the handler checks the domain again, so a disk the define already put back is not
 *   plugged twice);
 * - a `detach` entry unplugs its disk and then removes its secret; a disk of ours (it
 *   names an attachment secret) whose attachment the spec no longer has is unplugged too,
 *   so the domain holds exactly the spec's `attach` entries;
 * - a teardown (the instance is gone) removes the secrets its domain's disks named;
 * - nothing is planned for a domain that is not this host's;
 * - every attachment of the spec gets a status with its revision once an apply succeeded:
 *   ERROR with the reason when its entry is not a valid disk or its step failed, else
 *   ACTIVE.
 */
import type { ResourceStatus } from '../../contracts/status.ts';
import type { InstanceVolume } from '../../contracts/volume.ts';
import { ours } from './plan-steps.ts';
import type { ComputeStep } from './steps.ts';
import type { InstanceTarget } from './target.ts';
import {
  checkVolumeDisk,
  type FoundVolumeDisk,
  type ObservedVolumes,
  renderSecretXml,
  renderVolumeDisk,
} from './volume-xml.ts';

export type { ObservedVolumes } from './volume-xml.ts';

export interface VolumePlan {
  /** Before the instance's steps: the secrets a define or start needs. */
  before: ComputeStep[];
  /** After them: hot-plugs, unplugs, secrets removed. */
  after: ComputeStep[];
}

/** How long a guest may take to release an unplugged disk (Nova waits about as long). */
export const DETACH_TIMEOUT_MS = 30_000;

const EMPTY: VolumePlan = { before: [], after: [] };

const diskOf = (disks: FoundVolumeDisk[], v: InstanceVolume) =>
  disks.find((d) => d.volumeId === v.volume_id || d.secretUuid === v.attachment_id);

function attachSteps(t: InstanceTarget, o: ObservedVolumes, v: InstanceVolume, p: VolumePlan) {
  if (t.volumeProblems.has(v.attachment_id)) return;
  const disk = checkVolumeDisk(v, t.initiator);
  const password = v.connection?.auth_password ?? '';
  if (!o.secrets.has(v.attachment_id))
    p.before.push({
      kind: 'volume-secret',
      attachmentId: v.attachment_id,
      xml: renderSecretXml(v.attachment_id, t.initiator),
      value: password,
      why: `CHAP secret of attachment ${v.attachment_id}`,
    });
  if (!diskOf(o.disks, v))
    p.after.push({
      kind: 'volume-attach',
      uuid: t.id,
      attachmentId: v.attachment_id,
      volumeId: v.volume_id,
      xml: renderVolumeDisk(disk),
      secret: { xml: renderSecretXml(v.attachment_id, t.initiator), value: password },
      why: `attach volume ${v.volume_id} as ${v.device}`,
    });
}

function detachStep(t: InstanceTarget, d: FoundVolumeDisk, attachmentId: string | null) {
  return {
    kind: 'volume-detach',
    uuid: t.id,
    attachmentId,
    volumeId: d.volumeId,
    xml: d.xml,
    timeoutMs: DETACH_TIMEOUT_MS,
    why: `detach volume ${d.volumeId} (${d.device})`,
  } as const satisfies ComputeStep;
}

const removeSecret = (attachmentId: string, why: string): ComputeStep => ({
  kind: 'volume-secret-remove',
  attachmentId,
  why,
});

function detachSteps(t: InstanceTarget, o: ObservedVolumes, v: InstanceVolume, p: VolumePlan) {
  const disk = diskOf(o.disks, v);
  if (disk) p.after.push(detachStep(t, disk, v.attachment_id));
  else if (o.secrets.has(v.attachment_id))
    p.after.push(removeSecret(v.attachment_id, `CHAP secret of detached ${v.attachment_id}`));
}

/** Disks naming an attachment secret that the spec does not list: unplugged. */
function strayDisks(t: InstanceTarget, o: ObservedVolumes, p: VolumePlan) {
  const listed = new Set(t.volumes.flatMap((v) => [v.attachment_id, v.volume_id]));
  for (const d of o.disks) {
    if (d.secretUuid === null || listed.has(d.secretUuid) || listed.has(d.volumeId)) continue;
    p.after.push(detachStep(t, d, null));
    if (o.secrets.has(d.secretUuid))
      p.after.push(removeSecret(d.secretUuid, `CHAP secret of stray attachment ${d.secretUuid}`));
  }
}

export function planVolumes(
  t: InstanceTarget,
  domain: Parameters<typeof ours>[0],
  o: ObservedVolumes | undefined,
): VolumePlan {
  if (!o || (domain !== null && !ours(domain, t.settings.host))) return EMPTY;
  if (t.intent === 'absent') {
    const named = o.disks.flatMap((d) =>
      d.secretUuid && o.secrets.has(d.secretUuid) ? [d.secretUuid] : [],
    );
    return { before: [], after: named.map((id) => removeSecret(id, `CHAP secret of ${id}`)) };
  }
  const p: VolumePlan = { before: [], after: [] };
  for (const v of t.volumes) {
    if (v.action === 'attach') attachSteps(t, o, v, p);
    else detachSteps(t, o, v, p);
  }
  if (domain !== null) strayDisks(t, o, p);
  return p;
}

/** The statuses of the spec's attachments after a successful apply. */
export function volumeStatuses(
  t: InstanceTarget,
  failures: ReadonlyMap<string, string>,
): ResourceStatus[] {
  if (t.intent === 'absent') return [];
  return t.volumes.map((v) => {
    const reason = t.volumeProblems.get(v.attachment_id) ?? failures.get(v.attachment_id);
    return {
      resource: 'attachment',
      id: v.attachment_id,
      status: reason === undefined ? 'ACTIVE' : 'ERROR',
      ...(reason === undefined ? {} : { reason }),
      revision: v.revision,
    };
  });
}
