/**
 * diff(desired, observed) → the steps that make Open vSwitch match (agents/lib/steps.ts):
 * one OVSDB transaction, applied (the executor waits for ovs-vswitchd's cur_cfg), then
 * the agent's own `flows` step: one `ovs-ofctl --bundle replace-flows` per bridge, run
 * side by side (each ~20 ms, mostly waiting on ovs-vswitchd; each atomic on its own
 * bridge, so their order does not matter). Pure.
 *
 * Invariants: the transaction is absent when OVSDB already matches (applying a plan twice
 * changes nothing); on a physical bridge it adds only the bridge (when missing) and its
 * `phy-` patch, and never removes a port there (the uplink is the operator's); every port row it inserts comes from host/ovs/ops.ts's builder, so its
 * name is checked before any op exists; it is applied before the flows that name its
 * ports; replace-flows swaps a bridge's whole flow table atomically, so stale flows (an
 * older agent's cookie) vanish in the same bundle that installs the new set and traffic
 * never meets an empty table.
 */

import type { CommandSpec } from '../../core/exec.ts';
import { replaceFlowsCommand } from '../../host/ovs/ofctl.ts';
import { addBridgeOps, type PortSpec, portOps } from '../../host/ovs/ops.ts';
import {
  map,
  mutate,
  type OvsdbNamedUuid,
  type OvsdbOperation,
  set,
  update,
  uuid,
} from '../../host/ovs/ovsdb-types.ts';
import type { Step } from '../lib/steps.ts';
import {
  type DesiredOvs,
  type DesiredTunnel,
  type OvsSettings,
  PATCH_INT,
  PATCH_TUN,
} from './desired.ts';
import type { OvsPort, OvsState } from './observe.ts';

/** What the flow steps need besides the flows: the agent's cookie, ovs-vswitchd's rundir. */
export interface FlowTarget {
  cookie: string;
  rundir: string;
}

/** Every bridge's replace-flows, run side by side by the agent's executor handler. */
export interface FlowsStep {
  kind: 'flows';
  commands: CommandSpec[];
  why: string;
}

export type OvsStep = Step | FlowsStep;

interface Planned {
  ops: OvsdbOperation[];
  /** Why the transaction is needed, one phrase per change. */
  why: string[];
}

type PortRow = PortSpec & { type: string };

const TUNNEL = /^(gre|vxlan)-[0-9a-f]{8}$/;

const tunnelRow = (name: string, t: DesiredTunnel): PortRow => ({
  name,
  type: t.type,
  options: { remote_ip: t.remoteIp, local_ip: t.localIp, key: 'flow' },
});

const patch = (name: string, peer: string): PortRow => ({
  name,
  type: 'patch',
  options: { peer },
});

/** Ports each bridge must hold besides VM ports: patch ports and tunnels. */
function requiredPorts(settings: OvsSettings, desired: DesiredOvs): Map<string, PortRow[]> {
  return new Map([
    [
      settings.intBridge,
      [patch(PATCH_TUN, PATCH_INT), ...desired.physical.map((l) => patch(l.intPort, l.phyPort))],
    ],
    [
      settings.tunBridge,
      [patch(PATCH_INT, PATCH_TUN), ...[...desired.tunnels].map(([name, t]) => tunnelRow(name, t))],
    ],
    ...desired.physical.map((l): [string, PortRow[]] => [l.bridge, [patch(l.phyPort, l.intPort)]]),
  ]);
}

/**
 * Ports the agent removes from a bridge when it no longer wants them: tunnels on br-int
 * and br-tun, and on br-int the `int-` patches of bridges no longer mapped. Nothing on a
 * physical bridge: its other ports (the uplink) are the operator's.
 */
function isStale(settings: OvsSettings, bridge: string, port: OvsPort): boolean {
  if (bridge !== settings.intBridge && bridge !== settings.tunBridge) return false;
  if (TUNNEL.test(port.name)) return true;
  return (
    bridge === settings.intBridge &&
    port.name.startsWith('int-') &&
    port.interfaces[0]?.type === 'patch'
  );
}

const sameMap = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(a).every(([k, v]) => b[k] === v);

function planBridges(settings: OvsSettings, desired: DesiredOvs, state: OvsState, out: Planned) {
  const required = requiredPorts(settings, desired);
  desired.bridges.forEach((want, i) => {
    const have = state.bridges.get(want.name);
    const needed = required.get(want.name) ?? [];
    if (!have) {
      const spec = { ...want, ports: needed };
      out.ops.push(...addBridgeOps(spec, `b${i}`));
      out.why.push(`add bridge ${want.name}`);
      return;
    }
    if (have.failMode !== want.failMode || have.datapathType !== want.datapathType) {
      out.ops.push(
        update('Bridge', [['_uuid', '==', uuid(have.uuid)]], {
          fail_mode: want.failMode,
          datapath_type: want.datapathType,
        }),
      );
      out.why.push(`set ${want.name} fail_mode/datapath_type`);
    }
    planBridgePorts(want.name, i, needed, state, out, (p) => isStale(settings, want.name, p));
  });
}

function planBridgePorts(
  bridge: string,
  i: number,
  needed: PortRow[],
  state: OvsState,
  out: Planned,
  stale: (port: OvsPort) => boolean,
) {
  const added: OvsdbNamedUuid[] = [];
  needed.forEach((p, j) => {
    const have = state.ports.get(p.name);
    const iface = have?.interfaces[0];
    if (!have || have.bridge !== bridge || !iface) {
      const built = portOps(p, `b${i}n${j}`);
      out.ops.push(...built.ops);
      added.push(built.port);
      out.why.push(`add ${p.name} to ${bridge}`);
    } else if (iface.type !== p.type || !sameMap(iface.options, p.options ?? {})) {
      out.ops.push(
        update('Interface', [['_uuid', '==', uuid(iface.uuid)]], {
          type: p.type,
          options: map(p.options ?? {}),
        }),
      );
      out.why.push(`reconfigure ${p.name}`);
    }
  });
  const wanted = new Set(needed.map((p) => p.name));
  const removed = [...state.ports.values()].filter(
    (port) => port.bridge === bridge && stale(port) && !wanted.has(port.name),
  );
  for (const port of removed) out.why.push(`remove stale ${port.name}`);
  const mutations: ['ports', 'insert' | 'delete', ReturnType<typeof set>][] = [];
  if (added.length) mutations.push(['ports', 'insert', set(added)]);
  if (removed.length) mutations.push(['ports', 'delete', set(removed.map((p) => uuid(p.uuid)))]);
  if (mutations.length) out.ops.push(mutate('Bridge', [['name', '==', bridge]], mutations));
}

/** VM ports get their VLAN and network; a port gone since desired was computed is left. */
function planVmPorts(desired: DesiredOvs, state: OvsState, out: Planned) {
  const tagged: string[] = [];
  for (const [name, want] of desired.ports) {
    const have = state.ports.get(name);
    if (!have) continue;
    if (have.tag === want.tag && sameMap(have.otherConfig, want.otherConfig)) continue;
    out.ops.push(
      update('Port', [['_uuid', '==', uuid(have.uuid)]], {
        tag: want.tag,
        other_config: map(want.otherConfig),
      }),
    );
    tagged.push(`${name}=${want.tag}`);
  }
  if (tagged.length > 8) out.why.push(`tag ${tagged.length} ports`);
  else if (tagged.length) out.why.push(`tag ${tagged.join(',')}`);
}

export function planOvs(
  settings: OvsSettings,
  desired: DesiredOvs,
  state: OvsState,
  target: FlowTarget,
): OvsStep[] {
  const out: Planned = { ops: [], why: [] };
  planBridges(settings, desired, state, out);
  planVmPorts(desired, state, out);
  const steps: OvsStep[] = [];
  if (out.ops.length)
    steps.push({ kind: 'ovsdb', ops: out.ops, applied: true, why: out.why.join('; ') });
  const bridges = [...desired.flows];
  steps.push({
    kind: 'flows',
    commands: bridges.map(([bridge, flows]) =>
      replaceFlowsCommand(
        target.rundir,
        bridge,
        flows.map((f) => `cookie=${target.cookie},${f}`),
      ),
    ),
    why: `replace flows of ${bridges.map(([b, f]) => `${b} (${f.length})`).join(', ')}`,
  });
  return steps;
}
