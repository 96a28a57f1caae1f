/**
 * What the host has for a network's DHCP service: its namespace, the tap inside it with
 * its addresses, the dnsmasq files, the leases dnsmasq recorded and whether that
 * network's dnsmasq runs. Read-only.
 *
 * Invariant: a dnsmasq counts as running only if its pid file names a live, non-zombie
 * process whose command line carries this network's pid-file path, so a stale pid file
 * or a recycled pid is never mistaken for the service.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { UUID } from '../../contracts/schema.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { dnsmasqIdentity, dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { readDnsmasqFiles, type StoredFiles } from '../../host/dnsmasq/files.ts';
import { type LeaseFile, readLeaseFile } from '../../host/dnsmasq/leases.ts';
import { type LinkInfo, listLinks } from '../../host/ip/link.ts';
import { netnsExists } from '../../host/ip/netns.ts';
import { findRunning, readCmdline } from '../../host/process/daemon.ts';
import { type DhcpSettings, netnsOf, servedMarkerOf, stateDirOf } from './desired.ts';

export interface ObservedDhcp {
  netnsExists: boolean;
  /** Taps inside the namespace (normally one). */
  taps: LinkInfo[];
  files: StoredFiles | null;
  /** dnsmasq's leases file, checked line by line (null: none written yet). */
  leases: LeaseFile | null;
  pid: number | null;
  argv: string[] | null;
  stateDirExists: boolean;
  /** The files' digest when dnsmasq was last signalled to serve them. */
  servedDigest: string | null;
}

export async function observeNetwork(
  runner: CommandRunner,
  s: DhcpSettings,
  networkId: string,
): Promise<ObservedDhcp> {
  const netns = netnsOf(s, networkId);
  const exists = await netnsExists(netns);
  const taps = exists
    ? (await listLinks(runner, netns)).filter((l) => l.name.startsWith('tap'))
    : [];
  const paths = dnsmasqPaths(stateDirOf(s, networkId));
  const files = await readDnsmasqFiles(paths.dir).catch(() => null);
  const leases = await readLeaseFile(paths.leases);
  const pid = await findRunning(paths.pid, dnsmasqIdentity(paths));
  const argv = pid === null ? null : await readCmdline(pid);
  const stateDirExists = await stat(paths.dir).then(
    () => true,
    () => false,
  );
  const servedDigest = await readFile(servedMarkerOf(paths.dir), 'utf8').then(
    (t) => t.trim(),
    () => null,
  );
  return { netnsExists: exists, taps, files, leases, pid, argv, stateDirExists, servedDigest };
}

/**
 * Every network this agent has anything for: its state directories. A qdhcp namespace
 * without one is not ours (another deployment on the machine, a test) and is left alone.
 */
export async function observedNetworkIds(s: DhcpSettings): Promise<Set<string>> {
  const dirs = await readdir(s.stateRoot).catch(() => [] as string[]);
  return new Set(dirs.filter((d) => UUID.test(d)));
}
