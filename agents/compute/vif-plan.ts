/**
 * An instance's VIFs on Open vSwitch: from the taps and OVS rows observed (vif.ts), the
 * steps that plug them. Pure.
 *
 * Two modes, from `[ovs] vswitchd_netns`:
 * - `ovs` (production, ovs-vswitchd in our netns): libvirt plugs the tap itself from the
 *   domain's `<virtualport type='openvswitch'>` with iface-id and attached-mac; the plan
 *   only checks the port is there (no steps; a missing one is an error naming it).
 * - `ethernet` (the lab: ovs-vswitchd and its OVSDB in another netns): libvirt makes a
 *   bare tap in our netns; the plan moves it into vswitchd's netns (MTU, link up) and adds
 *   it to the integration bridge in one OVSDB transaction (host/ovs/ports.ts plugOps: kind
 *   `system`, iface-id, attached-mac, vm-uuid, iface-status=active).
 *
 * Invariants: a tap that was (re)created since its OVS row was written gets a fresh row
 * (old row removed from the bridge that holds it and applied by ovs-vswitchd, then the
 * new one added), so vswitchd never keeps a handle on a device that is gone; every OVSDB
 * step waits until ovs-vswitchd applied it (`applied: true`, no polling); a tap that does
 * not exist is an error (the guest is not running), never a silent skip.
 */

import { ipBatch, ipCommand, linkSetMtu, linkSetNetns, linkUp } from '../../host/ip/link.ts';
import { type ObservedPort, plugOps, unplugOps, type VifSpec } from '../../host/ovs/ports.ts';
import type { Step } from '../lib/steps.ts';
import type { DesiredNic } from './desired.ts';

/** Where a tap is: in our netns (just made by libvirt), in vswitchd's, or nowhere. */
export type TapPlace = 'root' | 'vswitchd' | 'missing';

export interface ObservedVifs {
  /** OVS ports named after the instance's taps or carrying its vm-uuid. */
  ports: ObservedPort[];
  /** Ethernet mode, an active domain: where each tap is. */
  taps: Record<string, TapPlace>;
}

/** The VIFs an instance must have plugged. */
export interface VifTarget {
  vmUuid: string;
  bridge: string;
  /** ovs-vswitchd's netns: the agent plugs (ethernet); absent: libvirt plugs (ovs). */
  netns?: string;
  nics: DesiredNic[];
}

/** A VIF that cannot be plugged from what the host has. */
export class VifError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VifError';
  }
}

const isCurrent = (rows: ObservedPort[], nic: DesiredNic) =>
  rows.length === 1 && rows[0]?.ifaceId === nic.portId;

function checkLibvirtPlugged(t: VifTarget, o: ObservedVifs): Step[] {
  for (const nic of t.nics)
    if (!o.ports.some((p) => p.name === nic.tap && p.ifaceId === nic.portId))
      throw new VifError(
        `OVS port ${nic.tap} with iface-id ${nic.portId} is missing: libvirt did not plug it into ${t.bridge}`,
      );
  return [];
}

function moveTap(nic: DesiredNic, netns: string): Step[] {
  return [
    {
      kind: 'command',
      spec: ipCommand(linkSetNetns(nic.tap, netns)),
      why: `tap ${nic.tap} into ovs-vswitchd's netns`,
    },
    {
      kind: 'command',
      spec: ipBatch([linkSetMtu(nic.tap, nic.mtu), linkUp(nic.tap)], netns),
      why: `tap ${nic.tap}: MTU ${nic.mtu}, up`,
    },
  ];
}

/** The steps that plug every NIC of `t` (ethernet), or none after checking them (ovs). */
export function planVifs(t: VifTarget, o: ObservedVifs): Step[] {
  const netns = t.netns;
  if (netns === undefined) return checkLibvirtPlugged(t, o);
  const moves: Step[] = [];
  const stale: ObservedPort[] = [];
  const plug: VifSpec[] = [];
  for (const nic of t.nics) {
    const place = o.taps[nic.tap] ?? 'missing';
    const rows = o.ports.filter((p) => p.name === nic.tap);
    if (place === 'vswitchd' && isCurrent(rows, nic)) continue;
    if (place === 'missing')
      throw new VifError(`tap ${nic.tap} does not exist: is the guest running?`);
    if (place === 'root') moves.push(...moveTap(nic, netns));
    stale.push(...rows);
    plug.push({
      name: nic.tap,
      kind: 'system',
      portId: nic.portId,
      attachedMac: nic.mac,
      vmUuid: t.vmUuid,
    });
  }
  const names = plug.map((v) => v.name).join(',');
  return [
    ...moves,
    ...(stale.length > 0
      ? [unplugStep(stale, `stale OVS rows of ${stale.map((p) => p.name).join(',')}`)]
      : []),
    ...(plug.length > 0
      ? [
          {
            kind: 'ovsdb' as const,
            ops: plugOps(t.bridge, plug),
            applied: true,
            why: `plug ${names}`,
          },
        ]
      : []),
  ];
}

/** One OVSDB step removing observed ports from the bridges that hold them. */
export function unplugStep(ports: readonly ObservedPort[], why: string): Step {
  return { kind: 'ovsdb', ops: unplugOps(ports), applied: true, why };
}
