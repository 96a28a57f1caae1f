/**
 * kumo-volume-agent: the volumes and snapshots scheduled to this storage host, as the
 * kit's reconciler with two resource kinds, `volume` and `snapshot`: each a data object
 * (a sparse file or an LV, backend-file.ts / backend-lvm.ts) and, for a volume with
 * initiators, one tgt target (LUN 1, its CHAP account, an ACL of exactly its initiators).
 *
 * Invariants:
 * - one reconcile key per object (`volume:<id>`, `snapshot:<id>`): get_volume_info /
 *   get_snapshot_info → desired (pure) → observe → plan (pure) → one executor;
 * - a spec'd object reports ACTIVE or ERROR (with the reason) with the spec's revision,
 *   which the API compares with the status waiting on it; an object answered null
 *   reports nothing (its status key is dropped);
 * - a resync reconciles every id get_host_volumes lists and every volume-/snapshot-
 *   object and volume target this host holds, so what nothing claims is removed — never
 *   what the API knows, never what has a connected session (plan.ts);
 * - tgtd is not the agent's child: killing the agent leaves targets serving; a tgtd that
 *   lost targets (restarted) is noticed at the next report (configurations) and every
 *   volume whose target is missing is reconciled again, and every resync does it anyway.
 */

import { PermanentError } from '../../contracts/errors.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Json } from '../../contracts/schema.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import {
  GetHostVolumesResult,
  GetSnapshotInfoResult,
  GetVolumeInfoResult,
  type SnapshotSpec,
  targetIqn,
  type VolumeSpec,
} from '../../contracts/volume.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import { createReconciler, type KindStatus, type ResourceKindSpec } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import { tgtVersion } from '../../host/tgt/daemon.ts';
import { classify } from '../lib/errors.ts';
import { resyncServed } from '../lib/served.ts';
import { resourceStatus, statusReporter } from '../lib/status.ts';
import type { HookDeps } from '../run.ts';
import { type DataBackend, PERMANENT_KINDS } from './backend.ts';
import { fileBackend } from './backend-file.ts';
import { lvmBackend } from './backend-lvm.ts';
import {
  type DesiredSnapshot,
  type DesiredVolume,
  desiredSnapshot,
  desiredVolume,
} from './desired.ts';
import { applyVolumeSteps } from './executor.ts';
import { observeSnapshot, observeVolume, ownedIds } from './observe.ts';
import { type ObservedObject, planSnapshot, planVolume, type VolumeStep } from './plan.ts';
import { checkSettings, type VolumeSettings, volumeSettings } from './settings.ts';
import { createTgt, type Tgt } from './tgt.ts';

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

/** The kit's classes, and a backend refusal (LvmError, VolumeFileError kinds) as permanent. */
export function classifyVolume(e: unknown): Error {
  const err = classify(e);
  const kind = (err as { kind?: unknown }).kind;
  if (typeof kind === 'string' && PERMANENT_KINDS.has(kind))
    return new PermanentError(err.message, { cause: err });
  return err;
}

/** The volumes left exported: a target missing from tgtd is reconciled again. */
function exportedVolumes() {
  const exported = new Set<string>();
  return {
    note(id: string, d: DesiredVolume) {
      if (d.state === 'present' && d.target) exported.add(id);
      else exported.delete(id);
    },
    async missing(tgt: Tgt): Promise<string[]> {
      if (exported.size === 0) return [];
      const iqns = new Set((await tgt.show()).map((t) => t.iqn));
      return [...exported].filter((id) => !iqns.has(targetIqn(id)));
    },
  };
}

function makeBackend(settings: VolumeSettings, runner: CommandRunner): DataBackend {
  return settings.driver === 'file' ? fileBackend(settings, runner) : lvmBackend(settings, runner);
}

async function facts(deps: {
  settings: VolumeSettings;
  backend: DataBackend;
  tgtVersion: string | null;
}): Promise<Record<string, Json>> {
  const { settings, backend } = deps;
  const cap = await backend.capacity();
  const held = (await backend.list()).filter((n) => n.startsWith('volume-')).length;
  return {
    volume_backend_name: settings.driver,
    total_capacity_gb: cap.totalGb,
    free_capacity_gb: cap.freeGb,
    volumes: held,
    target_portal: settings.portal,
    target_helper: 'tgtadm',
    tgt_version: deps.tgtVersion,
    ...cap.facts,
  };
}

export async function volumeHooks({ config, runner, log, broker }: HookDeps): Promise<AgentHooks> {
  const settings = volumeSettings(config);
  await checkSettings(settings);
  const host = settings.host;
  const version = await tgtVersion(runner);
  const backend = makeBackend(settings, runner);
  const tgt = createTgt(runner, settings.tgtControlPort);
  const reporter = statusReporter(broker, host, 'volume');
  const exported = exportedVolumes();
  let ctl: AgentControl | undefined;
  const deps: ObjectKindDeps = {
    settings,
    backend,
    tgt,
    runner,
    log,
    reporter,
    onVolume: exported.note,
    async getVolume(id) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_volume_info', { host, volume_id: id });
      return GetVolumeInfoResult.parse(reply).volume;
    },
    async getSnapshot(id) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_snapshot_info', { host, snapshot_id: id });
      return GetSnapshotInfoResult.parse(reply).snapshot;
    },
  };
  const reconciler = createReconciler({
    log,
    kinds: { volume: volumeKind(deps), snapshot: snapshotKind(deps) },
    classify: classifyVolume,
  });

  async function checkTargets() {
    const missing = await exported.missing(tgt).catch((e: Error) => {
      log.warn({ err: e.message }, 'tgtd not answering');
      return [];
    });
    if (missing.length) log.warn({ volumes: missing }, 'targets missing from tgtd: re-exported');
    for (const id of missing) ctl?.enqueue('volume', id);
  }

  return {
    async configurations() {
      await checkTargets();
      return facts({ settings, backend, tgtVersion: version });
    },
    async start(control) {
      ctl = control;
    },
    async resync() {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_host_volumes', { host });
      const active = GetHostVolumesResult.parse(reply);
      const owned = await ownedIds(deps);
      const enqueue = (resource: string, id: string) => ctl?.enqueue(resource, id);
      for (const resource of ['volume', 'snapshot'] as const) {
        const plural = resource === 'volume' ? 'volumes' : 'snapshots';
        resyncServed({
          resource,
          active: active[plural],
          owned: owned[plural],
          reporter,
          reconciler,
          enqueue,
        });
      }
    },
    reconcile: (resource, id, revision) => reconciler.reconcile(resource, id, revision),
  };
}
