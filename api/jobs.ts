/**
 * Every periodic job kumo-api runs, in one place, each under its own lease (periodic.ts),
 * so that with several replicas each job runs on exactly one of them at a time:
 *
 * - `dhcp-sweep`, `l3-sweep`, `lbaas-sweep`: failover off dead or admin-down agents and
 *   catch-up scheduling, every agent_down_time / 2. They are kumo-api's liveness sweeps:
 *   liveness itself is computed when read (liveness.ts), and these are what act on it.
 *   They first run agent_down_time after this replica started: a kumo-api that was down
 *   longer sees every agent dead until its next report is stored.
 * - `compute-sweep`: builds a stopped replica left in `scheduling`, on the same beat.
 * - `reclaim`: soft-deleted servers past [compute] reclaim_instance_interval.
 * - `token-key-rotation`: with [identity] key_rotation_interval, rotates the shared key
 *   repository once the primary key is that old (its file's age says when it was made
 *   primary, so the interval holds across restarts and lease moves), and tells every
 *   replica's key ring to reload.
 *
 * Invariant: a job's pass holds no state another replica needs. The L3 and LBaaS sweeps
 * remember what they found unhosted in their last pass (to place it only when seen twice
 * in a row, so an operator's remove-then-add is not raced); a replica's memory covers
 * only its current tenure of the lease — the first pass of a tenure starts empty, since
 * another replica's passes may have run since this one's — which only delays a placement
 * by one pass.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Broker } from '../core/amqp.ts';
import type { Logger } from '../core/log.ts';
import { type Db, notifyOnCommit } from './db/index.ts';
import type { ApiSettings } from './deps.ts';
import { KEYS_CHANNEL, primaryKeyIndex, rotateKeys } from './identity/keys.ts';
import { reclaimSoftDeleted } from './instance-delete.ts';
import type { Clock } from './liveness.ts';
import type { PassTenure, PeriodicJob } from './periodic.ts';
import { sweepStuckBuilds } from './scheduler/compute-sweep.ts';
import { runDhcpSweep } from './scheduler/dhcp.ts';
import { newL3SweepMemory, runL3Sweep } from './scheduler/l3.ts';
import { newLbaasSweepMemory, runLbaasSweep } from './scheduler/lbaas.ts';

export interface JobDeps {
  db: Db;
  broker: Broker;
  clock: Clock;
  log: Logger;
  settings: ApiSettings;
}

export interface KeyRotation {
  dir: string;
  intervalHours: number;
  maxActive: number;
}

/** A sweep's memory of its previous pass: empty when that pass may have run elsewhere. */
export function memoryOfTenure<M extends { unhosted: Set<string> }>(
  tenure: PassTenure,
  memory: M,
): M {
  if (tenure.first) memory.unhosted.clear();
  return memory;
}

/** The API's periodic jobs; `keys` when kumo-api rotates its own token keys. */
export function apiJobs(deps: JobDeps, keys?: KeyRotation): PeriodicJob[] {
  const { settings } = deps;
  const everyMs = (settings.agentDownTime * 1000) / 2;
  const graceMs = settings.agentDownTime * 1000;
  const l3 = newL3SweepMemory();
  const lbaas = newLbaasSweepMemory();
  const jobs: PeriodicJob[] = [
    { name: 'dhcp-sweep', everyMs, graceMs, pass: () => runDhcpSweep(deps) },
    { name: 'l3-sweep', everyMs, graceMs, pass: (t) => runL3Sweep(deps, memoryOfTenure(t, l3)) },
    {
      name: 'lbaas-sweep',
      everyMs,
      graceMs,
      pass: (t) => runLbaasSweep(deps, memoryOfTenure(t, lbaas)),
    },
    { name: 'compute-sweep', everyMs, pass: () => sweepStuckBuilds(deps) },
  ];
  const reclaimS = settings.reclaimInstanceInterval ?? 0;
  if (reclaimS > 0)
    jobs.push({
      name: 'reclaim',
      everyMs,
      pass: () => reclaimSoftDeleted(deps, reclaimS, settings.agentDownTime),
    });
  if (keys && keys.intervalHours > 0) jobs.push(keyRotationJob(keys, deps));
  return jobs;
}

/**
 * Rotates when the primary key is `intervalHours` old (a fraction of an hour is allowed);
 * checks every minute at most. Each rotation is announced on KEYS_CHANNEL, so every
 * replica's key ring reloads at once (identity/start.ts).
 */
export function keyRotationJob(
  keys: KeyRotation,
  { db, log }: Pick<JobDeps, 'db' | 'log'>,
): PeriodicJob {
  const intervalMs = keys.intervalHours * 3_600_000;
  return {
    name: 'token-key-rotation',
    everyMs: Math.min(intervalMs, 60_000),
    pass: async () => {
      const primary = join(keys.dir, String(primaryKeyIndex(keys.dir)));
      const age = Date.now() - statSync(primary).mtimeMs;
      if (age < intervalMs) return;
      const index = rotateKeys(keys.dir, keys.maxActive);
      log.info({ key_repository: keys.dir, primary: index }, 'token keys rotated');
      await notifyOnCommit(db, db.engine, KEYS_CHANNEL);
    },
  };
}
