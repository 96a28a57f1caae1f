/**
 * What the host has for a network's DHCP service: its namespace, the taps inside it and
 * their OVS ports, the dnsmasq files, the leases dnsmasq recorded, whether that
 * network's dnsmasq runs, and its metadata proxy. Read-only.
 *
 * Invariant: a dnsmasq counts as running only if its pid file names a live, non-zombie
 * process whose command line carries this network's pid-file path, so a stale pid file
 * or a recycled pid is never mistaken for the service. OVSDB is asked only when there is
 * a port to look for.
 */
import { readFile, stat } from 'node:fs/promises';
import { UUID } from '../../contracts/schema.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { dnsmasqIdentity, dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { readDnsmasqFiles, type StoredFiles } from '../../host/dnsmasq/files.ts';
import { type LeaseFile, readLeaseFile } from '../../host/dnsmasq/leases.ts';
import { listLinks } from '../../host/ip/link.ts';
import { netnsExists } from '../../host/ip/netns.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { findPorts } from '../../host/ovs/ports.ts';
import { findRunning, readCmdline } from '../../host/process/daemon.ts';
import { type ObservedProxy, observeProxy } from '../lib/metadata-proxy.ts';
import type { NsObserved } from '../lib/ns-port.ts';
import { listOwned } from '../lib/ownership.ts';
import {
  type DesiredDhcp,
  type DhcpSettings,
  netnsOf,
  proxyDirOf,
  servedMarkerOf,
  stateDirOf,
} from './desired.ts';

export interface ObservedDhcp extends NsObserved {
  files: StoredFiles | null;
  /** dnsmasq's leases file, checked line by line (null: none written yet). */
  leases: LeaseFile | null;
  pid: number | null;
  argv: string[] | null;
  stateDirExists: boolean;
  /** The files' digest when dnsmasq was last signalled to serve them. */
  servedDigest: string | null;
  /** The network's metadata proxy (files and haproxy), wanted or not. */
  proxy: ObservedProxy;
}

export interface ObserveDeps {
  runner: CommandRunner;
  ovsdb(): Promise<OvsdbClient>;
}

const orNull = <T>(p: Promise<T>) => p.catch(() => null);

/** The namespace, the taps in it, and the OVS ports of those and of the desired tap. */
async function observeNs(deps: ObserveDeps, netns: string, device: string | undefined) {
  const exists = await netnsExists(netns);
  const links = exists
    ? (await listLinks(deps.runner, netns)).filter((l) => l.name.startsWith('tap'))
    : [];
  const names = [...new Set([...(device ? [device] : []), ...links.map((l) => l.name)])];
  const ovsPorts = names.length ? await findPorts(await deps.ovsdb(), { names }) : [];
  return { netnsExists: exists, links, ovsPorts };
}

export async function observeNetwork(
  deps: ObserveDeps,
  s: DhcpSettings,
  networkId: string,
  desired: DesiredDhcp | null,
): Promise<ObservedDhcp> {
  const ns = await observeNs(deps, netnsOf(s, networkId), desired?.device);
  const paths = dnsmasqPaths(stateDirOf(s, networkId));
  const pid = await findRunning(paths.pid, dnsmasqIdentity(paths));
  return {
    ...ns,
    files: await orNull(readDnsmasqFiles(paths.dir)),
    leases: await readLeaseFile(paths.leases),
    pid,
    argv: pid === null ? null : await readCmdline(pid),
    stateDirExists: await stat(paths.dir).then(
      () => true,
      () => false,
    ),
    servedDigest: await orNull(readFile(servedMarkerOf(paths.dir), 'utf8').then((t) => t.trim())),
    // The spec when one is wanted: whether its haproxy runs in its namespace is compared too.
    proxy: await observeProxy(desired?.metadata ?? proxyDirOf(paths.dir)),
  };
}

/**
 * Every network this agent has anything for: its state directories. A qdhcp namespace
 * without one is not ours (another deployment on the machine, a test) and is left alone.
 */
export async function ownedNetworkIds(s: DhcpSettings): Promise<Set<string>> {
  return new Set(await listOwned(s.stateRoot, { idPattern: UUID }));
}
