/**
 * The volume agent's calls (contracts/volume.ts): which volumes and snapshots a storage
 * host holds, and one of each as that host must hold and export it.
 *
 * Invariants: a host is told only about volumes scheduled to it (and their snapshots);
 * for any other id the answer is null, so the agent removes what it holds of it unless
 * the volume is in use; a volume (with its initiators) or a snapshot is read from one
 * snapshot of the database (one read-only REPEATABLE READ transaction on PostgreSQL,
 * SQLite's one connection), so its revision matches what it lists.
 */
import type { ArgsOf } from '../contracts/messages.ts';
import type { SnapshotSpec, VolumeSpec } from '../contracts/volume.ts';
import type { Db } from './db/index.ts';
import { hostVolumeIds, readSnapshotSpec, readVolumeSpec } from './db/volume-info.ts';
import { ONE_SNAPSHOT } from './rpc-l3.ts';

export async function getHostVolumes(
  db: Db,
  args: ArgsOf<'get_host_volumes'>,
): Promise<{ volumes: string[]; snapshots: string[] }> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(ONE_SNAPSHOT);
    return hostVolumeIds(tx, args.host);
  });
}

export async function getVolumeInfo(
  db: Db,
  args: ArgsOf<'get_volume_info'>,
): Promise<{ volume: VolumeSpec | null }> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(ONE_SNAPSHOT);
    return { volume: await readVolumeSpec(tx, args.host, args.volume_id) };
  });
}

export async function getSnapshotInfo(
  db: Db,
  args: ArgsOf<'get_snapshot_info'>,
): Promise<{ snapshot: SnapshotSpec | null }> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(ONE_SNAPSHOT);
    return { snapshot: await readSnapshotSpec(tx, args.host, args.snapshot_id) };
  });
}
