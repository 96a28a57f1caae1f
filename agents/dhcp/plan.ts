/**
 * diff(desired, observed) → the steps that make one network's DHCP service match. Pure.
 *
 * Invariants: a plan for a network that is already right is empty (no command, no
 * write, no signal); dnsmasq is restarted only when its own addresses or command line
 * change and otherwise reloaded with SIGHUP after an atomic file rewrite; a network this
 * host no longer serves loses its dnsmasq, OVS port, namespace and state directory.
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
import type { CommandSpec } from '../../core/exec.ts';
import { dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { hostEntries, releaseCommand, unusedLeases } from '../../host/dnsmasq/leases.ts';
import { planReload } from '../../host/dnsmasq/reload.ts';
import type { DnsmasqFiles } from '../../host/dnsmasq/render.ts';
import {
  addrDel,
  addrReplace,
  ipBatch,
  ipCommand,
  linkSetMac,
  linkSetMtu,
  linkSetNetns,
  linkUp,
} from '../../host/ip/link.ts';
import { netnsAddCommand, netnsDelCommand } from '../../host/ip/netns.ts';
import { type DesiredDhcp, type DhcpSettings, netnsOf, stateDirOf } from './desired.ts';
import type { ObservedDhcp } from './observe.ts';

export type DhcpStep =
  | { kind: 'command'; spec: CommandSpec; why: string }
  | { kind: 'files'; stateDir: string; files: DnsmasqFiles; why: string }
  | {
      kind: 'dnsmasq';
      /** Written to the served marker once dnsmasq has the files (absent for stop). */
      digest?: string;
      action: 'start' | 'reload' | 'restart' | 'stop';
      stateDir: string;
      netns: string;
      argv: string[];
      why: string;
    }
  | { kind: 'mkdir'; dir: string; why: string }
  | { kind: 'rmdir'; dir: string; why: string };

const vsctl = (s: DhcpSettings, args: string[]): CommandSpec => ({
  argv: ['ovs-vsctl', `--db=${s.ovsdbConnection}`, '--timeout=10', ...args],
});

const globalAddrs = (o: ObservedDhcp, device: string) =>
  (o.taps.find((t) => t.name === device)?.addrs ?? [])
    .filter((a) => a.scope === 'global')
    .map((a) => a.cidr);

function teardown(o: ObservedDhcp, s: DhcpSettings, networkId: string): DhcpStep[] {
  const steps: DhcpStep[] = [];
  const stateDir = stateDirOf(s, networkId);
  const netns = netnsOf(s, networkId);
  if (o.pid !== null)
    steps.push({
      kind: 'dnsmasq',
      action: 'stop',
      stateDir,
      netns,
      argv: [],
      why: 'not served here',
    });
  for (const tap of o.taps) {
    steps.push({
      kind: 'command',
      spec: vsctl(s, ['--if-exists', 'del-port', s.intBridge, tap.name]),
      why: 'unplug',
    });
  }
  if (o.netnsExists)
    steps.push({ kind: 'command', spec: netnsDelCommand(netns), why: 'remove namespace' });
  if (o.stateDirExists)
    steps.push({ kind: 'rmdir', dir: dnsmasqPaths(stateDir).dir, why: 'remove state' });
  return steps;
}

function plug(d: DesiredDhcp, o: ObservedDhcp, s: DhcpSettings): DhcpStep[] {
  const steps: DhcpStep[] = [];
  if (!o.netnsExists) {
    // The state directory first: it is what marks the namespace as this agent's.
    steps.push({ kind: 'mkdir', dir: d.stateDir, why: 'state directory' });
    steps.push({ kind: 'command', spec: netnsAddCommand(d.netns), why: 'namespace' });
    steps.push({ kind: 'command', spec: ipCommand(linkUp('lo'), d.netns), why: 'loopback' });
  }
  for (const tap of o.taps.filter((t) => t.name !== d.device)) {
    steps.push({
      kind: 'command',
      spec: vsctl(s, ['--if-exists', 'del-port', s.intBridge, tap.name]),
      why: 'stale tap',
    });
  }
  const tap = o.taps.find((t) => t.name === d.device);
  if (!tap) {
    // An OVS port left by a deleted namespace would make `--may-exist add-port` a no-op
    // with no device to move: drop it first (a separate transaction, so OVS recreates it).
    steps.push({
      kind: 'command',
      spec: vsctl(s, ['--if-exists', 'del-port', s.intBridge, d.device]),
      why: 'clear a stale OVS port',
    });
    const ids = [
      `external_ids:iface-id=${d.portId}`,
      `external_ids:attached-mac=${d.mac}`,
      'external_ids:iface-status=active',
    ];
    const add = [
      '--may-exist',
      'add-port',
      s.intBridge,
      d.device,
      '--',
      'set',
      'Interface',
      d.device,
      'type=internal',
      ...ids,
    ];
    steps.push({ kind: 'command', spec: vsctl(s, add), why: 'plug the DHCP port into br-int' });
    steps.push({
      kind: 'command',
      spec: ipCommand(linkSetNetns(d.device, d.netns), s.vswitchdNetns),
      why: 'move the tap',
    });
  }
  const have = globalAddrs(o, d.device);
  const lines = [
    ...(tap?.mac === d.mac ? [] : [linkSetMac(d.device, d.mac)]),
    ...(tap?.mtu === d.mtu ? [] : [linkSetMtu(d.device, d.mtu)]),
    ...(tap?.up ? [] : [linkUp(d.device)]),
    ...d.addresses.filter((a) => !have.includes(a)).map((a) => addrReplace(d.device, a)),
    ...have.filter((a) => !d.addresses.includes(a)).map((a) => addrDel(d.device, a)),
  ];
  if (lines.length)
    steps.push({ kind: 'command', spec: ipBatch(lines, d.netns), why: 'tap link and addresses' });
  return steps;
}

function releases(d: DesiredDhcp, o: ObservedDhcp): DhcpStep[] {
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
): DhcpStep[] {
  if (!d) return teardown(o, s, networkId);
  const steps = plug(d, o, s);
  const filesChanged = (['hosts', 'addnHosts', 'opts'] as const).some(
    (k) => o.files?.[k] !== d.files[k],
  );
  if (filesChanged)
    steps.push({ kind: 'files', stateDir: d.stateDir, files: d.files, why: 'dnsmasq files' });
  const reload = planReload(
    {
      running: o.pid !== null,
      files: o.files,
      addresses: globalAddrs(o, d.device),
      argv: o.argv ?? undefined,
    },
    { files: d.files, addresses: d.addresses, argv: d.argv },
  );
  // Files already right on disk but never signalled (the agent died between write and
  // SIGHUP): the served marker, written after each signal, tells.
  const unserved = reload.action === 'none' && o.servedDigest !== d.digest;
  const action = unserved ? 'reload' : reload.action;
  const why = unserved ? ['files were written but not yet served'] : reload.why;
  if (action !== 'none') {
    steps.push({
      kind: 'dnsmasq',
      action,
      stateDir: d.stateDir,
      netns: d.netns,
      argv: d.argv,
      digest: d.digest,
      why: why.join('; '),
    });
  }
  steps.push(...releases(d, o));
  return steps;
}
