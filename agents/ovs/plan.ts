/**
 * diff(desired, observed) → the steps that make Open vSwitch match: one OVSDB
 * transaction and one `ovs-ofctl --bundle replace-flows` per bridge. Pure.
 *
 * Invariants: the transaction is empty when OVSDB already matches (applying a plan twice
 * changes nothing); it bumps next_cfg so the executor can wait for ovs-vswitchd to have
 * applied it before flows name the new ports; replace-flows swaps a bridge's whole flow
 * table atomically, so stale flows (an older agent's cookie) vanish in the same bundle
 * that installs the new set and traffic never meets an empty table.
 */
import {
  insert,
  map,
  mutate,
  namedUuid,
  type OvsdbNamedUuid,
  type OvsdbOperation,
  type OvsdbRow,
  set,
  update,
  uuid,
} from '../../host/ovs/ovsdb-types.ts';
import {
  type DesiredOvs,
  type DesiredTunnel,
  type OvsSettings,
  PATCH_INT,
  PATCH_TUN,
} from './desired.ts';
import type { OvsPort, OvsState } from './observe.ts';

export interface FlowStep {
  bridge: string;
  flows: string[];
}

export interface OvsPlan {
  ops: OvsdbOperation[];
  flowSteps: FlowStep[];
}

interface PortRow {
  name: string;
  type: string;
  options?: Record<string, string>;
}

const TUNNEL = /^(gre|vxlan)-[0-9a-f]{8}$/;

function insertPort(ops: OvsdbOperation[], ref: string, p: PortRow): OvsdbNamedUuid {
  const iface: OvsdbRow = { name: p.name, type: p.type };
  if (p.options) iface.options = map(p.options);
  ops.push(insert('Interface', iface, `${ref}i`));
  ops.push(insert('Port', { name: p.name, interfaces: namedUuid(`${ref}i`) }, ref));
  return namedUuid(ref);
}

const tunnelRow = (name: string, t: DesiredTunnel): PortRow => ({
  name,
  type: t.type,
  options: { remote_ip: t.remoteIp, local_ip: t.localIp, key: 'flow' },
});

/** Ports each bridge must hold besides VM ports: patch ports and tunnels. */
function requiredPorts(settings: OvsSettings, desired: DesiredOvs): Map<string, PortRow[]> {
  return new Map([
    [settings.intBridge, [{ name: PATCH_TUN, type: 'patch', options: { peer: PATCH_INT } }]],
    [
      settings.tunBridge,
      [
        { name: PATCH_INT, type: 'patch', options: { peer: PATCH_TUN } },
        ...[...desired.tunnels].map(([name, t]) => tunnelRow(name, t)),
      ],
    ],
  ]);
}

const sameMap = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(a).every(([k, v]) => b[k] === v);

function planBridges(
  settings: OvsSettings,
  desired: DesiredOvs,
  state: OvsState,
  ops: OvsdbOperation[],
) {
  const required = requiredPorts(settings, desired);
  desired.bridges.forEach((want, i) => {
    const have = state.bridges.get(want.name);
    const needed = required.get(want.name) ?? [];
    if (!have) {
      const ports = [{ name: want.name, type: 'internal' }, ...needed].map((p, j) =>
        insertPort(ops, `b${i}p${j}`, p),
      );
      ops.push(
        insert(
          'Bridge',
          {
            name: want.name,
            ports: set(ports),
            datapath_type: want.datapathType,
            fail_mode: want.failMode,
          },
          `b${i}`,
        ),
      );
      ops.push(mutate('Open_vSwitch', [], [['bridges', 'insert', set([namedUuid(`b${i}`)])]]));
      return;
    }
    if (have.failMode !== want.failMode || have.datapathType !== want.datapathType) {
      ops.push(
        update('Bridge', [['_uuid', '==', uuid(have.uuid)]], {
          fail_mode: want.failMode,
          datapath_type: want.datapathType,
        }),
      );
    }
    planBridgePorts(want.name, i, needed, state, ops);
  });
}

function planBridgePorts(
  bridge: string,
  i: number,
  needed: PortRow[],
  state: OvsState,
  ops: OvsdbOperation[],
) {
  const added: OvsdbNamedUuid[] = [];
  const removed: string[] = [];
  needed.forEach((p, j) => {
    const have = state.ports.get(p.name);
    const iface = have?.interfaces[0];
    if (!have || have.bridge !== bridge || !iface) added.push(insertPort(ops, `b${i}n${j}`, p));
    else if (iface.type !== p.type || !sameMap(iface.options, p.options ?? {})) {
      ops.push(
        update('Interface', [['_uuid', '==', uuid(iface.uuid)]], {
          type: p.type,
          options: map(p.options ?? {}),
        }),
      );
    }
  });
  const wanted = new Set(needed.map((p) => p.name));
  for (const port of state.ports.values()) {
    if (port.bridge === bridge && TUNNEL.test(port.name) && !wanted.has(port.name))
      removed.push(port.uuid);
  }
  const mutations: ['ports', 'insert' | 'delete', ReturnType<typeof set>][] = [];
  if (added.length) mutations.push(['ports', 'insert', set(added)]);
  if (removed.length) mutations.push(['ports', 'delete', set(removed.map(uuid))]);
  if (mutations.length) ops.push(mutate('Bridge', [['name', '==', bridge]], mutations));
}

function planVmPorts(desired: DesiredOvs, state: OvsState, ops: OvsdbOperation[]) {
  for (const [name, want] of desired.ports) {
    const have = state.ports.get(name) as OvsPort;
    if (have.tag === want.tag && sameMap(have.otherConfig, want.otherConfig)) continue;
    ops.push(
      update('Port', [['_uuid', '==', uuid(have.uuid)]], {
        tag: want.tag,
        other_config: map(want.otherConfig),
      }),
    );
  }
}

export function planOvs(
  settings: OvsSettings,
  desired: DesiredOvs,
  state: OvsState,
  cookie: string,
): OvsPlan {
  const ops: OvsdbOperation[] = [];
  planBridges(settings, desired, state, ops);
  planVmPorts(desired, state, ops);
  if (ops.length) ops.push(mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]));
  const flowSteps = [...desired.flows].map(([bridge, flows]) => ({
    bridge,
    flows: flows.map((f) => `cookie=${cookie},${f}`),
  }));
  return { ops, flowSteps };
}
