/**
 * Compute helpers shared by the fullstack compute suite and bench/boot: the test guest
 * uploaded through kumo-api's Glance API as a UEC-style image triple (a kernel `aki`, a
 * ramdisk `ari` and a small `ami` disk whose `kernel_id`/`ramdisk_id` name them, as the
 * OpenStack guides' images do), and waits on a server's status; server reads ask for
 * Kumo's spawn timings (the X-Kumo-Diagnostics header).
 *
 * Invariant: everything goes through the public HTTP API; nothing is written into the
 * database or the agents' directories behind their backs.
 */
import { readFileSync } from 'node:fs';
import { ADMIN_TOKEN, type Cluster } from './cluster.ts';
import { waitFor } from './env.ts';
import type { TestGuest } from './guest.ts';

export interface GuestImages {
  kernel: string;
  ramdisk: string;
  /** The image to boot (imageRef). */
  machine: string;
}

export interface ServerView {
  id: string;
  name: string;
  status: string;
  fault?: { code: number; message: string; details?: string };
  addresses: Record<string, { addr: string; 'OS-EXT-IPS-MAC:mac_addr': string }[]>;
  'OS-EXT-SRV-ATTR:host': string | null;
  'OS-EXT-SRV-ATTR:instance_name': string;
  'OS-EXT-STS:vm_state': string;
  'OS-EXT-STS:task_state': string | null;
  'OS-EXT-STS:power_state': number;
  'kumo:spawn_timings': Record<string, number> | null;
  created: string;
  updated: string;
}

async function uploadImage(
  c: Cluster,
  meta: Record<string, unknown>,
  data: Buffer,
): Promise<string> {
  const made = await c.http('POST', '/v2/images', { visibility: 'public', ...meta });
  if (made.status !== 201)
    throw new Error(`image create: ${made.status} ${JSON.stringify(made.body)}`);
  const id = (made.body as { id: string }).id;
  const res = await fetch(`${c.url}/v2/images/${id}/file`, {
    method: 'PUT',
    headers: { 'x-auth-token': ADMIN_TOKEN, 'content-type': 'application/octet-stream' },
    body: new Blob([new Uint8Array(data)]),
  });
  if (res.status !== 204) throw new Error(`image upload: ${res.status} ${await res.text()}`);
  return id;
}

/** Uploads the guest: kernel, ramdisk and a 1 MiB raw machine disk booting them. */
export async function uploadGuest(
  c: Cluster,
  guest: TestGuest,
  opts: { name?: string; cmdline?: string } = {},
): Promise<GuestImages> {
  const name = opts.name ?? 'kumo-guest';
  const kernel = await uploadImage(
    c,
    { name: `${name}-kernel`, disk_format: 'aki', container_format: 'aki' },
    readFileSync(guest.kernel),
  );
  const ramdisk = await uploadImage(
    c,
    { name: `${name}-ramdisk`, disk_format: 'ari', container_format: 'ari' },
    readFileSync(guest.initrd),
  );
  const machine = await uploadImage(
    c,
    {
      name,
      disk_format: 'ami',
      container_format: 'ami',
      kernel_id: kernel,
      ramdisk_id: ramdisk,
      os_command_line: opts.cmdline ?? guest.cmdline,
    },
    Buffer.alloc(1024 * 1024),
  );
  return { kernel, ramdisk, machine };
}

/** A GET whose server views carry `kumo:spawn_timings` (X-Kumo-Diagnostics: spawn-timings). */
export async function getWithTimings(c: Cluster, path: string) {
  const res = await fetch(`${c.url}${path}`, {
    headers: { 'x-auth-token': ADMIN_TOKEN, 'x-kumo-diagnostics': 'spawn-timings' },
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
}

export async function getServer(c: Cluster, id: string): Promise<ServerView | undefined> {
  const res = await getWithTimings(c, `/servers/${id}`);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET /servers/${id}: ${res.status}`);
  return (res.body as { server: ServerView }).server;
}

/** Waits until the server has `status` and no task; rejects at once on an unexpected ERROR. */
export async function waitStatus(
  c: Cluster,
  id: string,
  status: string,
  timeoutMs = 90_000,
): Promise<ServerView> {
  const deadline = Date.now() + timeoutMs;
  let last: ServerView | undefined;
  while (Date.now() < deadline) {
    last = await getServer(c, id);
    if (last?.status === 'ERROR' && status !== 'ERROR')
      throw new Error(`server ${id} went ERROR: ${JSON.stringify(last.fault)}`);
    if (last?.status === status && last['OS-EXT-STS:task_state'] === null) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `server ${id} not ${status} after ${timeoutMs} ms: ${last?.status}/${last?.['OS-EXT-STS:task_state']}`,
  );
}

export function waitGone(c: Cluster, id: string, timeoutMs = 60_000): Promise<boolean> {
  return waitFor(
    `server ${id} gone`,
    async () => (await getServer(c, id)) === undefined,
    timeoutMs,
    200,
  );
}

export async function consoleOutput(c: Cluster, id: string): Promise<string> {
  const res = await c.http('POST', `/servers/${id}/action`, { 'os-getConsoleOutput': {} });
  if (res.status !== 200) throw new Error(`console: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as { output: string }).output;
}
