/**
 * The volume agent's two reconcile kinds, `volume` and `snapshot`: fetch (get_volume_info /
 * get_snapshot_info) → desired (pure) → observe → plan (pure) → the one executor, and the
 * status each reports.
 *
 * Invariants: a spec'd object reports ACTIVE or ERROR (with the reason) carrying the
 * revision of the spec last fetched for it, which the API compares with the status waiting
 * on it; an object answered null reports nothing (its status key is dropped); a backend's
 * refusal that no retry can mend (LvmError / VolumeFileError kinds in PERMANENT_KINDS) is
 * a PermanentError: reported, not retried until the next hint or resync; tgtd not
 * answering (restarting) is a TransientError: retried, no status changes.
 */
import { PermanentError, TransientError } from '../../contracts/errors.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { SnapshotSpec, VolumeSpec } from '../../contracts/volume.ts';
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import type { KindStatus, ResourceKindSpec } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import { tgtadmRefusal } from '../../host/tgt/tgtadm.ts';
import { classify } from '../lib/errors.ts';
import { resourceStatus } from '../lib/status.ts';
import { type DataBackend, PERMANENT_KINDS } from './backend.ts';
import {
  type DesiredSnapshot,
  type DesiredVolume,
  desiredSnapshot,
  desiredVolume,
} from './desired.ts';
import { applyVolumeSteps } from './executor.ts';
import { observeSnapshot, observeVolume } from './observe.ts';
import { type ObservedObject, planSnapshot, planVolume, type VolumeStep } from './plan.ts';
import type { VolumeSettings } from './settings.ts';
import type { Tgt } from './tgt.ts';

type Spec = { revision: number } | null;

export interface ObjectKindDeps {
  settings: VolumeSettings;
  backend: DataBackend;
  tgt: Tgt;
  runner: CommandRunner;
  log: Logger;
  getVolume(id: string): Promise<VolumeSpec | null>;
  getSnapshot(id: string): Promise<SnapshotSpec | null>;
  reporter?: StatusReporter<ResourceStatus>;
  /** Told what each volume reconcile left exported (for the tgtd restart check). */
  onVolume?(id: string, desired: DesiredVolume): void;
  /** Steps applied by kind (agents/lib/steps.ts); none counted when absent. */
  metrics?: StepMetrics;
}

/** ACTIVE/ERROR with the revision of the spec last fetched for the id (module comment). */
function objectStatus(
  reporter: StatusReporter<ResourceStatus>,
  resource: 'volume' | 'snapshot',
): KindStatus<Spec, unknown, ResourceStatus> & { fetched(id: string, spec: Spec): void } {
  const revisions = new Map<string, number>();
  const withRevision = (id: string, s: ResourceStatus) => {
    const revision = revisions.get(id);
    return revision === undefined ? undefined : { ...s, revision };
  };
  return {
    reporter,
    fetched(id, spec) {
      if (spec) revisions.set(id, spec.revision);
      else revisions.delete(id);
    },
    ok: (_spec, _d, id) => withRevision(id, resourceStatus(resource, id)),
    failed: (err, id) => withRevision(id, resourceStatus(resource, id, err)),
  };
}

export function volumeKind(
  deps: ObjectKindDeps,
): ResourceKindSpec<VolumeSpec | null, DesiredVolume, ObservedObject, VolumeStep, ResourceStatus> {
  const status = deps.reporter ? objectStatus(deps.reporter, 'volume') : undefined;
  return {
    async fetch(id) {
      const spec = await deps.getVolume(id);
      status?.fetched(id, spec);
      return spec;
    },
    desired: (spec, id) => desiredVolume(spec, id, deps.settings),
    observe: (_id, d) => observeVolume(deps, d),
    plan: (d, o) => planVolume(d, o, deps.settings),
    async apply(steps, id) {
      await applyVolumeSteps(deps, steps, { volumeId: id });
    },
    ...(status ? { status: { ...status, ok: noteOk(status, deps.onVolume) } } : {}),
  };
}

function noteOk(
  status: KindStatus<Spec, unknown, ResourceStatus>,
  onVolume?: (id: string, d: DesiredVolume) => void,
): KindStatus<Spec, unknown, ResourceStatus>['ok'] {
  return (spec, d, id) => {
    onVolume?.(id, d as DesiredVolume);
    return status.ok(spec, d, id);
  };
}

export function snapshotKind(
  deps: ObjectKindDeps,
): ResourceKindSpec<
  SnapshotSpec | null,
  DesiredSnapshot,
  ObservedObject,
  VolumeStep,
  ResourceStatus
> {
  const status = deps.reporter ? objectStatus(deps.reporter, 'snapshot') : undefined;
  return {
    async fetch(id) {
      const spec = await deps.getSnapshot(id);
      status?.fetched(id, spec);
      return spec;
    },
    desired: (spec, id) => desiredSnapshot(spec, id, deps.settings),
    observe: (_id, d) => observeSnapshot(deps, d),
    plan: (d, o) => planSnapshot(d, o),
    async apply(steps, id) {
      await applyVolumeSteps(deps, steps, { snapshotId: id });
    },
    ...(status ? { status } : {}),
  };
}

/**
 * The kit's classes; a backend refusal (LvmError, VolumeFileError kinds) as permanent;
 * no tgtd answering (it restarts) as transient: retried, and no volume turns ERROR for it.
 */
export function classifyVolume(e: unknown): Error {
  if (tgtadmRefusal(e) === 'no-daemon')
    return new TransientError(`tgtd is not answering: ${(e as Error).message}`, { cause: e });
  const err = classify(e);
  const kind = (err as { kind?: unknown }).kind;
  if (typeof kind === 'string' && PERMANENT_KINDS.has(kind))
    return new PermanentError(err.message, { cause: err });
  return err;
}
