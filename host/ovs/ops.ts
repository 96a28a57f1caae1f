/**
 * OVSDB transactions in Open vSwitch's own vocabulary (Open_vSwitch → Bridge → Port →
 * Interface), as operation arrays for `client.transact('Open_vSwitch', ops)`. Pure.
 *
 * Invariants:
 * - Each builder is one atomic transaction: either every row appears, or none does.
 * - Rows are only ever inserted together with the reference that keeps them alive: Bridge,
 *   Port and Interface are not root tables, so an unreferenced row would be silently
 *   garbage-collected by ovsdb-server. Adding ports to a bridge therefore first `wait`s
 *   (timeout 0) for the bridge to exist, so a missing bridge is an error at op 0, not a
 *   successful no-op.
 * - Like `ovs-vsctl add-br`, a new bridge gets its own internal port of the same name.
 *   Duplicate bridge/port/interface names fail at commit (the schema indexes `name`).
 */
import { assertDeviceName } from '../ip/names.ts';
import {
  comment,
  insert,
  map,
  mutate,
  namedUuid,
  type OvsdbNamedUuid,
  type OvsdbOperation,
  type OvsdbRow,
  set,
  uuid,
  wait,
} from './ovsdb-types.ts';

export interface PortSpec {
  name: string;
  /** Interface type: '' (system device), 'internal', 'gre', 'vxlan', 'patch', ... */
  type?: string;
  /** Interface options, e.g. {remote_ip: '10.0.0.2', key: 'flow'} or {peer: 'patch-int'}. */
  options?: Record<string, string>;
  /** Interface external_ids: iface-id, attached-mac, vm-uuid, iface-status. */
  interfaceExternalIds?: Record<string, string>;
  portExternalIds?: Record<string, string>;
  /** Access VLAN tag (0..4095) on the Port. */
  tag?: number;
  /** Interface.mac: the MAC OVS gives an internal device. */
  mac?: string;
  /** Interface.mtu_request. */
  mtuRequest?: number;
}

export interface BridgeSpec {
  name: string;
  /** 'netdev' for the userspace datapath, 'system' (or '') for the kernel one. */
  datapathType?: string;
  failMode?: 'secure' | 'standalone';
  externalIds?: Record<string, string>;
  otherConfig?: Record<string, string>;
  ports?: PortSpec[];
}

/** Bridge and port names are device names: host/ip/names.ts's one rule. */
function checkName(kind: string, name: string): void {
  assertDeviceName(name, `${kind} name`);
}

/**
 * Interface + Port rows for one port (its name checked first); returns the ops and the
 * Port's named-uuid `ref`, for the caller to reference from a Bridge in the same
 * transaction. `ref` must be unique within the transaction.
 */
export function portOps(
  spec: PortSpec,
  ref: string,
): { ops: OvsdbOperation[]; port: OvsdbNamedUuid } {
  checkName('port', spec.name);
  const iface: OvsdbRow = { name: spec.name };
  if (spec.type !== undefined) iface.type = spec.type;
  if (spec.options) iface.options = map(spec.options);
  if (spec.interfaceExternalIds) iface.external_ids = map(spec.interfaceExternalIds);
  if (spec.mac !== undefined) iface.mac = spec.mac;
  if (spec.mtuRequest !== undefined) iface.mtu_request = spec.mtuRequest;
  const port: OvsdbRow = { name: spec.name, interfaces: namedUuid(`${ref}_if`) };
  if (spec.portExternalIds) port.external_ids = map(spec.portExternalIds);
  if (spec.tag !== undefined) port.tag = spec.tag;
  return {
    ops: [insert('Interface', iface, `${ref}_if`), insert('Port', port, ref)],
    port: namedUuid(ref),
  };
}

function bridgeRow(spec: BridgeSpec, ports: OvsdbNamedUuid[]): OvsdbRow {
  const row: OvsdbRow = { name: spec.name, ports: set(ports) };
  if (spec.datapathType !== undefined) row.datapath_type = spec.datapathType;
  if (spec.failMode !== undefined) row.fail_mode = spec.failMode;
  if (spec.externalIds) row.external_ids = map(spec.externalIds);
  if (spec.otherConfig) row.other_config = map(spec.otherConfig);
  return row;
}

/**
 * One transaction: Bridge + its internal port + `spec.ports`, linked from the root row.
 * `ref` prefixes the named-uuids, so several bridges can be added in one transaction.
 */
export function addBridgeOps(spec: BridgeSpec, ref = 'bridge'): OvsdbOperation[] {
  checkName('bridge', spec.name);
  const all: PortSpec[] = [{ name: spec.name, type: 'internal' }, ...(spec.ports ?? [])];
  const built = all.map((p, i) => portOps(p, `${ref}_port${i}`));
  return [
    ...built.flatMap((b) => b.ops),
    insert(
      'Bridge',
      bridgeRow(
        spec,
        built.map((b) => b.port),
      ),
      ref,
    ),
    mutate('Open_vSwitch', [], [['bridges', 'insert', set([namedUuid(ref)])]]),
    comment(`kumo: add bridge ${spec.name}`),
  ];
}

/** One transaction adding ports to an existing bridge (op 0 fails if the bridge is absent). */
export function addPortsOps(bridge: string, ports: PortSpec[]): OvsdbOperation[] {
  checkName('bridge', bridge);
  const built = ports.map((p, i) => portOps(p, `port${i}`));
  return [
    wait('Bridge', [['name', '==', bridge]], {
      columns: ['name'],
      until: '==',
      rows: [{ name: bridge }],
      timeoutMs: 0,
    }),
    ...built.flatMap((b) => b.ops),
    mutate(
      'Bridge',
      [['name', '==', bridge]],
      [['ports', 'insert', set(built.map((b) => b.port))]],
    ),
    comment(`kumo: add ports ${ports.map((p) => p.name).join(',')} to ${bridge}`),
  ];
}

/** Detach ports (by Port row uuid) from a bridge; ovsdb-server then collects Port/Interface. */
export function delPortsOps(bridge: string, portUuids: string[]): OvsdbOperation[] {
  checkName('bridge', bridge);
  return [
    mutate('Bridge', [['name', '==', bridge]], [['ports', 'delete', set(portUuids.map(uuid))]]),
    comment(`kumo: delete ${portUuids.length} port(s) from ${bridge}`),
  ];
}
