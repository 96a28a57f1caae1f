/**
 * kumo-volume-agent: the volumes and snapshots scheduled to this storage host, as the
 * kit's reconciler with two resource kinds, `volume` and `snapshot`: each a data object
 * (a sparse file or an LV, backend-file.ts / backend-lvm.ts) and, for a volume from its
 * creation on, one tgt target (LUN 1, its CHAP account, an ACL of exactly its initiators).
 *
 * Invariants:
 * - one reconcile key per object (`volume:<id>`, `snapshot:<id>`, kinds.ts): get_volume_info /
 *   get_snapshot_info → desired (pure) → observe → plan (pure) → one executor, reporting
 *   ACTIVE or ERROR with the spec's revision;
 * - `configurations` never throws (a backend that cannot be measured is reported as
 *   `backend_error` with zero capacity), so the agent stays up and says why;
 * - a resync reconciles every id get_host_volumes lists and every volume-/snapshot-
 *   object and volume target this host holds, so what nothing claims is removed — never
 *   what the API knows, never what has a connected session (plan.ts);
 * - tgtd is not the agent's child: killing the agent leaves targets serving; a tgtd that
 *   lost targets (restarted) is noticed at the next report (configurations) and every
 *   volume whose target is missing is reconciled again, and every resync does it anyway.
 */

import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Json } from '../../contracts/schema.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import {
  GetHostVolumesResult,
  GetSnapshotInfoResult,
  GetVolumeInfoResult,
  targetIqn,
} from '../../contracts/volume.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import type { Broker } from '../../core/amqp.ts';
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import { createReconciler, type Reconciler } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import { tgtVersion } from '../../host/tgt/daemon.ts';
import { resyncServed } from '../lib/served.ts';
import { statusReporter } from '../lib/status.ts';
import type { HookDeps } from '../run.ts';
import type { DataBackend } from './backend.ts';
import { fileBackend } from './backend-file.ts';
import { lvmBackend } from './backend-lvm.ts';
import type { DesiredVolume } from './desired.ts';
import { classifyVolume, type ObjectKindDeps, snapshotKind, volumeKind } from './kinds.ts';
import { ownedIds } from './observe.ts';
import { checkSettings, type VolumeSettings, volumeSettings } from './settings.ts';
import { createTgt, type Tgt } from './tgt.ts';

/** The volumes left exported: a target missing from tgtd is reconciled again. */
function exportedVolumes() {
  const exported = new Set<string>();
  return {
    note(id: string, d: DesiredVolume) {
      if (d.state === 'present' && d.target) exported.add(id);
      else exported.delete(id);
    },
    /** Enqueues every exported volume whose target tgtd no longer has (it restarted). */
    async recheck(tgt: Tgt, log: Logger, enqueue: (resource: string, id: string) => void) {
      if (exported.size === 0) return;
      const shown = await tgt.show().catch((e: Error) => {
        log.warn({ err: e.message }, 'tgtd not answering');
        return null;
      });
      if (!shown) return;
      const iqns = new Set(shown.map((t) => t.iqn));
      const missing = [...exported].filter((id) => !iqns.has(targetIqn(id)));
      if (missing.length) log.warn({ volumes: missing }, 'targets missing from tgtd: re-exported');
      for (const id of missing) enqueue('volume', id);
    },
  };
}

function makeBackend(settings: VolumeSettings, runner: CommandRunner): DataBackend {
  return settings.driver === 'file' ? fileBackend(settings, runner) : lvmBackend(settings, runner);
}

/** What the backend holds and has room for; a failure is reported, not thrown (the agent stays up). */
async function measured(backend: DataBackend): Promise<Record<string, Json>> {
  try {
    const cap = await backend.capacity();
    const held = (await backend.list()).filter((n) => n.startsWith('volume-')).length;
    return {
      total_capacity_gb: cap.totalGb,
      free_capacity_gb: cap.freeGb,
      volumes: held,
      ...cap.facts,
    };
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    return { total_capacity_gb: 0, free_capacity_gb: 0, volumes: 0, backend_error: reason };
  }
}

async function facts(deps: {
  settings: VolumeSettings;
  backend: DataBackend;
  tgtVersion: string | null;
}): Promise<Record<string, Json>> {
  return {
    volume_backend_name: deps.settings.driver,
    target_portal: deps.settings.portal,
    target_helper: 'tgtadm',
    tgt_version: deps.tgtVersion,
    ...(await measured(deps.backend)),
  };
}

/** get_volume_info / get_snapshot_info for this host. */
function apiCalls(broker: Pick<Broker, 'call'>, host: string) {
  return {
    async getVolume(id: string) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_volume_info', { host, volume_id: id });
      return GetVolumeInfoResult.parse(reply).volume;
    },
    async getSnapshot(id: string) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_snapshot_info', { host, snapshot_id: id });
      return GetSnapshotInfoResult.parse(reply).snapshot;
    },
  };
}

/** A resync: what get_host_volumes lists and what this host holds, of either kind. */
async function resyncAll(
  deps: Pick<ObjectKindDeps, 'settings' | 'backend' | 'tgt'> & {
    broker: Pick<Broker, 'call'>;
    reporter: StatusReporter<ResourceStatus>;
    reconciler: Reconciler;
    enqueue(resource: string, id: string): void;
  },
): Promise<void> {
  const host = deps.settings.host;
  const reply = await deps.broker.call(PLUGIN_TOPIC, 'get_host_volumes', { host });
  const active = GetHostVolumesResult.parse(reply);
  const owned = await ownedIds(deps);
  for (const [resource, list] of [
    ['volume', 'volumes'],
    ['snapshot', 'snapshots'],
  ] as const)
    resyncServed({ resource, active: active[list], owned: owned[list], ...deps });
}

export async function volumeHooks({
  config,
  runner,
  log,
  broker,
  metrics,
}: HookDeps): Promise<AgentHooks> {
  const settings = volumeSettings(config);
  await checkSettings(settings);
  const version = await tgtVersion(runner);
  const backend = makeBackend(settings, runner);
  const tgt = createTgt(runner, settings.tgtControlPort);
  const exported = exportedVolumes();
  let ctl: AgentControl | undefined;
  const enqueue = (resource: string, id: string) => ctl?.enqueue(resource, id);
  const reporter = statusReporter(broker, settings.host, 'volume');
  const deps: ObjectKindDeps = {
    ...{ settings, backend, tgt, runner, log, reporter },
    ...apiCalls(broker, settings.host),
    onVolume: exported.note,
    metrics: metrics?.steps,
  };
  const reconciler = createReconciler({
    log,
    kinds: { volume: volumeKind(deps), snapshot: snapshotKind(deps) },
    classify: classifyVolume,
  });
  return {
    async configurations() {
      await exported.recheck(tgt, log, enqueue);
      return facts({ settings, backend, tgtVersion: version });
    },
    async start(control) {
      ctl = control;
    },
    resync: () => resyncAll({ settings, backend, tgt, broker, reporter, reconciler, enqueue }),
    reconcile: (resource, id, revision) => reconciler.reconcile(resource, id, revision),
  };
}
