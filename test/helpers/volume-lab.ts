/**
 * The volume lab: kumo-api, N compute hosts (lab hosts of helpers/lab.ts, each with its OVS
 * and compute agent and an iSCSI initiator name of its own) and one storage host — a tgtd
 * of the lab's own (volume-lab-tgtd.ts) and a kumo-volume-agent with the file backend whose
 * volumes live in the cluster's directory. Guests boot without NICs (`kumo.nodhcp`,
 * `networks: none`); their disk watcher (guest-init.ts, `kumo.disk`) reports /dev/vdb on
 * the console.
 *
 * Invariants: everything is reached through the public APIs and the host tools' own views
 * (`tgtadm --op show`, the files in volumes_dir, `iscsi-inq`); the one read past the API is
 * a volume's CHAP credentials, which Cinder hands only to an attaching host. `destroy()`
 * removes every process, domain, namespace and file the lab made, also after a failure.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openDb } from '../../api/db/index.ts';
import type { Agent } from '../../contracts/agents.ts';
import { Cluster, type OvsEndpoint, ovsOf, type Proc } from './cluster.ts';
import { type GuestImages, uploadGuest, waitStatus } from './compute.ts';
import { waitFor } from './env.ts';
import { buildTestGuest, type TestGuest } from './guest.ts';
import { createLab, type Lab, type LabHost } from './lab.ts';
import { startTgtd, type Tgtd } from './volume-lab-tgtd.ts';

/** The storage host runs no OVS agent; its config still names an endpoint. */
const NO_OVS: OvsEndpoint = {
  dbSocket: '/nonexistent/db.sock',
  rundir: '/nonexistent',
  localIp: '192.0.2.10',
};

export interface ComputeHost {
  name: string;
  lab: LabHost;
  initiator: string;
}

export interface VolumeLab {
  c: Cluster;
  lab: Lab;
  tgtd: Tgtd;
  storageHost: string;
  volumesDir: string;
  compute: ComputeHost[];
  guest: TestGuest;
  /** The volume agent's process (replaced by startVolumeAgent). */
  readonly volumeAgent: Proc;
  /** `kill -9` of the volume agent. */
  killVolumeAgent(): Promise<void>;
  /** Starts it again (same host and config) and waits until it is alive. */
  startVolumeAgent(): Promise<void>;
  /** Files in volumes_dir (volume-<id>, snapshot-<id>). */
  volumeFiles(): string[];
  /** The CHAP user and secret of a volume (the API's row). */
  chapOf(volumeId: string): Promise<{ user: string; secret: string }>;
  /** Uploads a guest image whose command line adds `extra` to the base one. */
  image(name: string, extra: string): Promise<GuestImages>;
  /** Boots a NIC-less server and waits for ACTIVE. */
  boot(name: string, image: GuestImages): Promise<{ id: string; host: string }>;
  destroy(): Promise<void>;
}

export interface VolumeLabOptions {
  computeHosts: number;
  /** Lines appended to kumo-api's config. */
  apiConfig?: readonly string[];
}

async function waitAlive(c: Cluster, binary: string, n: number) {
  await waitFor(
    `${n} ${binary} alive`,
    async () => {
      const res = await c.http('GET', `/v2.0/agents?binary=${binary}&alive=true`);
      return (res.body as { agents: Agent[] }).agents.length === n;
    },
    60_000,
    250,
  );
}

function volumeAgentConfig(volumesDir: string, tgtd: Tgtd): string[] {
  return [
    '[volume]',
    'volume_driver = file',
    `volumes_dir = ${volumesDir}`,
    'volume_clear = zero',
    `tgt_control_port = ${tgtd.ctl}`,
    'target_ip_address = 127.0.0.1',
    `target_port = ${tgtd.port}`,
  ];
}

async function startCompute(c: Cluster, lab: Lab): Promise<ComputeHost[]> {
  const hosts = lab.hosts.map((h) => {
    const name = `cp-${lab.prefix}-${h.name}`;
    return { name, lab: h, initiator: `iqn.2010-10.org.kumo:${name}` };
  });
  for (const h of hosts) {
    c.startAgentOn('ovs', h.name, ovsOf(h.lab));
    c.startAgentOn('compute', h.name, ovsOf(h.lab), [
      '[compute]',
      `iscsi_initiator_name = ${h.initiator}`,
    ]);
  }
  await waitAlive(c, 'kumo-compute-agent', hosts.length);
  return hosts;
}

export async function createVolumeLab(opts: VolumeLabOptions): Promise<VolumeLab> {
  const guest = await buildTestGuest();
  const lab = await createLab({ hosts: opts.computeHosts });
  const apiConfig = [
    '[quotas]',
    'quota_gigabytes = -1',
    'quota_volumes = -1',
    'quota_snapshots = -1',
  ];
  const c = await Cluster.create('sqlite', undefined, [...apiConfig, ...(opts.apiConfig ?? [])]);
  let tgtd: Tgtd | undefined;
  try {
    tgtd = await startTgtd(c.dir.path);
    const volumesDir = join(c.dir.path, 'volumes');
    mkdirSync(volumesDir, { recursive: true });
    const storageHost = `st-${lab.prefix}`;
    await c.startApi();
    const compute = await startCompute(c, lab);
    const config = volumeAgentConfig(volumesDir, tgtd);
    let volumeAgent = c.startAgentOn('volume', storageHost, NO_OVS, config);
    await waitAlive(c, 'kumo-volume-agent', 1);
    const db = openDb(c.db.url);
    const t = tgtd;
    return {
      c,
      lab,
      tgtd,
      storageHost,
      volumesDir,
      compute,
      guest,
      get volumeAgent() {
        return volumeAgent;
      },
      killVolumeAgent: async () => {
        await c.stop(volumeAgent, 'SIGKILL');
      },
      startVolumeAgent: async () => {
        volumeAgent = c.startAgentOn('volume', storageHost, NO_OVS, config);
        await waitAlive(c, 'kumo-volume-agent', 1);
      },
      volumeFiles: () => (existsSync(volumesDir) ? readdirSync(volumesDir).sort() : []),
      chapOf: async (id) => {
        const rows = await db.query<{ auth_username: string; auth_secret: string }>(
          'SELECT auth_username, auth_secret FROM volumes WHERE id = ?',
          [id],
        );
        const row = rows[0];
        if (!row) throw new Error(`no volume row ${id}`);
        return { user: row.auth_username, secret: row.auth_secret };
      },
      image: (name, extra) => uploadGuest(c, guest, { name, cmdline: `${guest.cmdline} ${extra}` }),
      boot: async (name, image) => {
        const res = await c.http('POST', '/servers', {
          server: { name, flavorRef: '1', imageRef: image.machine, networks: 'none' },
        });
        if (res.status !== 202)
          throw new Error(`boot ${name}: ${res.status} ${JSON.stringify(res.body)}`);
        const id = (res.body as { server: { id: string } }).server.id;
        const view = await waitStatus(c, id, 'ACTIVE', 180_000);
        return { id, host: view['OS-EXT-SRV-ATTR:host'] as string };
      },
      destroy: async () => {
        await db.close();
        await c.cleanup();
        await t.stop();
        await lab.destroy();
      },
    };
  } catch (e) {
    await c.cleanup();
    await tgtd?.stop();
    await lab.destroy();
    throw e;
  }
}
