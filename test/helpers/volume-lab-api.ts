/**
 * The volume lab's API calls in the published shapes: Cinder v3 volumes, snapshots and
 * actions under `/volume/v3/{project_id}` (the static admin token's project), Nova's
 * `os-volume_attachments`, and the guests' disk watcher lines read from their console logs
 * (guest-init.ts DISK_*).
 *
 * Invariant: every wait records the statuses it saw, in order, so a test asserts the whole
 * path (creating → available, attaching → in-use …), not only where it ended; an
 * unexpected error status fails at once with the volume as the API shows it.
 */
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import type { Cluster } from './cluster.ts';
import { consoleOutput } from './compute.ts';
import { waitFor } from './env.ts';

export const V3 = `/volume/v3/${DEFAULT_PROJECT_ID}`;

export interface VolumeView {
  id: string;
  name: string | null;
  status: string;
  size: number;
  volume_type: string;
  snapshot_id: string | null;
  attachments: { server_id: string; attachment_id: string; device: string; volume_id: string }[];
}

export interface SnapshotView {
  id: string;
  status: string;
  volume_id: string;
  size: number;
}

type Res = { status: number; body: Record<string, unknown> | null };
const show = (r: Res) => `${r.status} ${JSON.stringify(r.body)}`;

const ERRORS = ['error', 'error_deleting', 'error_extending'];

/** POST a volume; the raw answer (refusals are asserted by the caller). */
export const postVolume = (c: Cluster, volume: Record<string, unknown>) =>
  c.http('POST', `${V3}/volumes`, { volume });

export async function createVolume(
  c: Cluster,
  volume: Record<string, unknown>,
): Promise<VolumeView> {
  const res = await postVolume(c, volume);
  if (res.status !== 202) throw new Error(`volume create: ${show(res)}`);
  return (res.body as { volume: VolumeView }).volume;
}

export async function getVolume(c: Cluster, id: string): Promise<VolumeView | undefined> {
  const res = await c.http('GET', `${V3}/volumes/${id}`);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET volume ${id}: ${show(res)}`);
  return (res.body as { volume: VolumeView }).volume;
}

export async function listVolumes(c: Cluster): Promise<VolumeView[]> {
  const res = await c.http('GET', `${V3}/volumes/detail`);
  if (res.status !== 200) throw new Error(`GET volumes: ${show(res)}`);
  return (res.body as { volumes: VolumeView[] }).volumes;
}

/**
 * Polls until the volume has `status`; `trail` collects each status seen (consecutive
 * repeats once). Another error status than the one waited for fails at once.
 */
export async function waitVolume(
  c: Cluster,
  id: string,
  status: string,
  trail: string[] = [],
  timeoutMs = 60_000,
): Promise<VolumeView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await getVolume(c, id);
    if (!v) throw new Error(`volume ${id} gone while waiting for ${status}`);
    if (trail.at(-1) !== v.status) trail.push(v.status);
    if (v.status === status) return v;
    if (ERRORS.includes(v.status)) throw new Error(`volume went ${v.status}: ${JSON.stringify(v)}`);
    if (Date.now() > deadline)
      throw new Error(`volume ${id} not ${status} after ${timeoutMs} ms: ${trail.join(' → ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function waitVolumeGone(c: Cluster, id: string, timeoutMs = 60_000) {
  return waitFor(
    `volume ${id} gone`,
    async () => (await getVolume(c, id)) === undefined,
    timeoutMs,
    200,
  );
}

export async function createSnapshot(c: Cluster, volumeId: string): Promise<SnapshotView> {
  const res = await c.http('POST', `${V3}/snapshots`, {
    snapshot: { volume_id: volumeId, name: `snap-of-${volumeId.slice(0, 8)}` },
  });
  if (res.status !== 202) throw new Error(`snapshot create: ${show(res)}`);
  return (res.body as { snapshot: SnapshotView }).snapshot;
}

export async function getSnapshot(c: Cluster, id: string): Promise<SnapshotView | undefined> {
  const res = await c.http('GET', `${V3}/snapshots/${id}`);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET snapshot ${id}: ${show(res)}`);
  return (res.body as { snapshot: SnapshotView }).snapshot;
}

export function waitSnapshot(
  c: Cluster,
  id: string,
  status: string | undefined,
  timeoutMs = 60_000,
) {
  return waitFor(
    `snapshot ${id} ${status ?? 'gone'}`,
    async () => {
      const s = await getSnapshot(c, id);
      if (status === undefined) return s === undefined;
      if (s?.status === 'error') throw new Error(`snapshot went error: ${JSON.stringify(s)}`);
      return s?.status === status ? s : undefined;
    },
    timeoutMs,
    100,
  );
}

/** Nova's attach: 200 with the volumeAttachment (device) or the refusal as it came. */
export const attach = (c: Cluster, serverId: string, volumeId: string) =>
  c.http('POST', `/v2.1/servers/${serverId}/os-volume_attachments`, {
    volumeAttachment: { volumeId },
  });

export const detach = (c: Cluster, serverId: string, volumeId: string) =>
  c.http('DELETE', `/v2.1/servers/${serverId}/os-volume_attachments/${volumeId}`);

export const volumeAction = (c: Cluster, id: string, body: unknown) =>
  c.http('POST', `${V3}/volumes/${id}/action`, body);

/** The console lines of a server that start with `marker ` (the disk watcher's). */
export async function markerLines(c: Cluster, serverId: string, marker: string): Promise<string[]> {
  const text = await consoleOutput(c, serverId);
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${marker} `));
}

/** Waits for the (after+1)-th `marker` line on the console; returns it. */
export async function waitMarker(
  c: Cluster,
  serverId: string,
  marker: string,
  after: number,
  timeoutMs = 90_000,
): Promise<string> {
  return waitFor(
    `${marker} line #${after + 1} on ${serverId}`,
    async () => (await markerLines(c, serverId, marker))[after],
    timeoutMs,
    500,
  );
}

/** `KUMO-DISK vdb <sectors> <hex>` → sectors and the first bytes as text (NULs dropped). */
export function parseDiskLine(line: string): { sectors: number; head: string } {
  const [, , sectors, hex] = line.split(' ');
  const head = /^[0-9a-f]+$/.test(hex ?? '')
    ? Buffer.from(hex as string, 'hex')
        .toString('latin1')
        .replace(/\0+$/, '')
    : '';
  return { sectors: Number(sectors), head };
}
