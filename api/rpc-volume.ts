/**
 * The volume agent's calls (contracts/volume.ts): which volumes and snapshots a storage
 * host holds, and one of each as that host must hold and export it.
 *
 * Invariant: a host is told only about volumes scheduled to it (and their snapshots);
 * for any other id the answer is null, so the agent removes what it holds of it unless
 * the volume is in use.
 */
import type { ArgsOf } from '../contracts/messages.ts';
import type { SnapshotSpec, VolumeSpec } from '../contracts/volume.ts';
import type { Db } from './db/index.ts';

export async function getHostVolumes(
  _db: Db,
  _args: ArgsOf<'get_host_volumes'>,
): Promise<{ volumes: string[]; snapshots: string[] }> {
  return { volumes: [], snapshots: [] };
}

export async function getVolumeInfo(
  _db: Db,
  _args: ArgsOf<'get_volume_info'>,
): Promise<{ volume: VolumeSpec | null }> {
  return { volume: null };
}

export async function getSnapshotInfo(
  _db: Db,
  _args: ArgsOf<'get_snapshot_info'>,
): Promise<{ snapshot: SnapshotSpec | null }> {
  return { snapshot: null };
}
