/**
 * diff(desired, observed) → the kit Steps that make one network's DHCP service match. Pure.
 *
 * Metadata: the proxy (agents/lib/metadata-proxy) starts after the tap holds
 * 169.254.169.254/32 (haproxy binds it) and stops before the address goes or the
 * namespace is deleted; the metadata address is not dnsmasq's, so it never restarts dnsmasq.
 *
 * Invariants: a plan for a network that is already right is empty (no command, no
 * write, no signal); the namespace and its port are agents/lib/ns-port's; dnsmasq is
 * restarted only when its own addresses or command line change and otherwise reloaded
 * with SIGHUP after atomic file rewrites, and the served marker records the files' digest
 * only after dnsmasq was told; a network this host no longer serves loses its dnsmasq,
 * OVS port, namespace and state directory.
 *
 * Leases: every lease in dnsmasq's leases file that the new hosts file no longer accounts
 * for (a deleted port, a changed MAC or IP) is released with dhcp_release(6) in the
 * namespace, else dnsmasq refuses its address to the next port for the whole lease time.
 * The releases come last, after the files are written and dnsmasq was signalled, started
 * or restarted — Neutron's reload_allocations releases first, then rewrites and SIGHUPs.
 * After is right here: a dnsmasq that is stopped or about to restart cannot hear a
 * release and reloads the lease from its file at start; and once the new hosts file is
 * loaded, the old MAC can no longer take the address back from the old entry between
 * release and reload (a VM whose port changed keeps renewing). A release that reaches
 * dnsmasq before the SIGHUP does still drops the lease. The plan follows the leases file,
 * so once dnsmasq has written it without those leases, a reconcile plans no release.
 */
import { METADATA_CIDR } from '../../contracts/metadata.ts';
import { dnsmasqIdentity, dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { hostEntries, releaseCommand, unusedLeases } from '../../host/dnsmasq/leases.ts';
import { planReload } from '../../host/dnsmasq/reload.ts';
import { proxySteps } from '../lib/metadata-proxy.ts';
import { globalAddresses, type NsPort, planNsPort, teardownNsPort } from '../lib/ns-port.ts';
import type { DaemonRef, Step } from '../lib/steps.ts';
import {
  type DesiredDhcp,
  type DhcpSettings,
  netnsOf,
  servedMarkerOf,
  stateDirOf,
} from './desired.ts';
import type { ObservedDhcp } from './observe.ts';

const FILES = ['hosts', 'addnHosts', 'opts'] as const;

function daemonOf(stateDir: string): DaemonRef {
  const paths = dnsmasqPaths(stateDir);
  return { pidfile: paths.pid, expected: dnsmasqIdentity(paths), tool: 'dnsmasq' };
}

const nsPortOf = (d: DesiredDhcp, s: DhcpSettings): NsPort => ({
  netns: d.netns,
  device: d.device,
  portId: d.portId,
  mac: d.mac,
  mtu: d.mtu,
  addresses: d.metadata ? [...d.addresses, METADATA_CIDR].sort() : d.addresses,
  bridge: s.intBridge,
  ...(s.vswitchdNetns ? { vswitchdNetns: s.vswitchdNetns } : {}),
});

function teardown(o: ObservedDhcp, s: DhcpSettings, networkId: string): Step[] {
  const stateDir = stateDirOf(s, networkId);
  return [
    ...(o.pid === null
      ? []
      : [
          {
            kind: 'daemon' as const,
            action: 'stop' as const,
            daemon: daemonOf(stateDir),
            why: 'not served here',
          },
        ]),
    ...proxySteps(null, o.proxy),
    ...teardownNsPort(netnsOf(s, networkId), o),
    ...(o.stateDirExists
      ? [{ kind: 'remove' as const, path: dnsmasqPaths(stateDir).dir, why: 'remove state' }]
      : []),
  ];
}

function fileSteps(d: DesiredDhcp, o: ObservedDhcp): Step[] {
  const paths = dnsmasqPaths(d.stateDir);
  return FILES.filter((k) => o.files?.[k] !== d.files[k]).map((k) => ({
    kind: 'file',
    path: paths[k],
    content: d.files[k],
    why: `dnsmasq ${k}`,
  }));
}

/** Start, SIGHUP or restart, then the served marker: what dnsmasq was told to serve. */
function dnsmasqSteps(d: DesiredDhcp, o: ObservedDhcp, link: string[]): Step[] {
  const reload = planReload(
    { running: o.pid !== null, files: o.files, addresses: link, argv: o.argv ?? undefined },
    { files: d.files, addresses: d.addresses, argv: d.argv },
  );
  // Files already right on disk but never signalled (the agent died between write and
  // SIGHUP): the served marker, written after each signal, tells.
  const unserved = reload.action === 'none' && o.servedDigest !== d.digest;
  const action = unserved ? 'reload' : reload.action;
  if (action === 'none') return [];
  const why = (unserved ? ['files were written but not yet served'] : reload.why).join('; ');
  const daemon = daemonOf(d.stateDir);
  const start: Step = {
    kind: 'daemon',
    action: 'start',
    daemon,
    spec: { argv: d.argv, netns: d.netns },
    why,
  };
  const run: Step[] =
    action === 'reload'
      ? [{ kind: 'signal', daemon, signal: 'SIGHUP', why }]
      : action === 'restart'
        ? [{ kind: 'daemon', action: 'stop', daemon, why }, start]
        : [start];
  const marker = servedMarkerOf(d.stateDir);
  return [...run, { kind: 'file', path: marker, content: `${d.digest}\n`, why: 'served marker' }];
}

function releases(d: DesiredDhcp, o: ObservedDhcp): Step[] {
  const file = o.leases;
  if (file === null) return [];
  const stale = unusedLeases(file, {
    hosts: hostEntries(d.files.hosts),
    previousHosts: o.files?.hosts == null ? null : hostEntries(o.files.hosts),
    served: d.dhcpAddresses,
  });
  return stale.map((lease) => ({
    kind: 'command',
    spec: releaseCommand(d.device, lease, file.serverDuid, d.netns),
    why: `release the unused lease of ${lease.ip} (${lease.version === 4 ? lease.mac : lease.duid})`,
  }));
}

export function planDhcp(
  d: DesiredDhcp | null,
  o: ObservedDhcp,
  s: DhcpSettings,
  networkId: string,
): Step[] {
  if (!d) return teardown(o, s, networkId);
  const link = globalAddresses(o.links.find((l) => l.name === d.device)).filter(
    (a) => a !== METADATA_CIDR,
  );
  const proxy = proxySteps(d.metadata, o.proxy);
  const stopFirst = d.metadata === null;
  return [
    // The state directory first: it is what marks the namespace as this agent's.
    ...(o.stateDirExists
      ? []
      : [{ kind: 'mkdir' as const, path: d.stateDir, why: 'state directory' }]),
    ...(stopFirst ? proxy : []),
    ...planNsPort(nsPortOf(d, s), o),
    ...fileSteps(d, o),
    ...dnsmasqSteps(d, o, link),
    ...(stopFirst ? [] : proxy),
    ...releases(d, o),
  ];
}
