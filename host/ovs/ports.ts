/**
 * The one way Kumo plugs and unplugs ports on Open vSwitch: an agent's VIFs (internal
 * ports for qdhcp/qrouter/qlbaas namespaces, taps made by libvirt) as OVSDB transactions,
 * and the wait until ovs-vswitchd has applied them.
 *
 * Invariants:
 * - device names pass host/ip/names' rule (IFNAMSIZ, no separators) before any op is built
 *   (ops.ts checks every bridge and port name with it);
 * - a port is added with everything it carries (iface-id, attached-mac, vm-uuid, status,
 *   MAC, MTU) in the same transaction as its Port and bridge reference: it appears whole;
 * - a port is removed from the bridge that holds it (observed), never from every bridge;
 * - `transactApplied` bumps next_cfg in the same transaction and returns only once
 *   ovs-vswitchd reports cur_cfg ≥ it (as `ovs-vsctl` does), through an OVSDB `wait`
 *   that ovsdb-server itself holds until then: no polling.
 */
import { SessionConnectionError } from '../session/errors.ts';
import { addPortsOps, delPortsOps, type PortSpec } from './ops.ts';
import {
  fromMap,
  fromSet,
  isUuid,
  map,
  mutate,
  type OvsdbClient,
  type OvsdbOperation,
  type OvsdbOpResult,
  type OvsdbRow,
  select,
  wait,
} from './ovsdb.ts';

const DB = 'Open_vSwitch';
export const APPLY_TIMEOUT_MS = 10_000;

/** A port an agent plugs for one Neutron port. */
export interface VifSpec {
  /** Device name (`tap…`, `qr-…`, `qg-…`). */
  name: string;
  /** `internal`: OVS makes the device (namespaces); `system`: the device exists (a tap). */
  kind: 'internal' | 'system';
  portId: string;
  attachedMac: string;
  vmUuid?: string;
  /** Interface.mac: the MAC OVS gives an internal device. */
  mac?: string;
  /** Interface.mtu_request. */
  mtu?: number;
  /** Access VLAN on br-int (set by the L2 agent when omitted). */
  tag?: number;
}

/** A port as observed in OVSDB. */
export interface ObservedPort {
  /** The Port row's uuid (what a Bridge references). */
  uuid: string;
  name: string;
  /** The bridge that holds it (null: an unreferenced row about to be collected). */
  bridge: string | null;
  ifaceId: string | null;
  attachedMac: string | null;
  vmUuid: string | null;
}

function vifPortSpec(v: VifSpec): PortSpec {
  const ids: Record<string, string> = {
    'iface-id': v.portId,
    'attached-mac': v.attachedMac,
    'iface-status': 'active',
    ...(v.vmUuid ? { 'vm-uuid': v.vmUuid } : {}),
  };
  return {
    name: v.name,
    ...(v.kind === 'internal' ? { type: 'internal' } : {}),
    interfaceExternalIds: ids,
    ...(v.mac ? { mac: v.mac } : {}),
    ...(v.mtu ? { mtuRequest: v.mtu } : {}),
    ...(v.tag !== undefined ? { tag: v.tag } : {}),
  };
}

/** One transaction adding `vifs` to `bridge` (fails at op 0 if the bridge is absent). */
export function plugOps(bridge: string, vifs: readonly VifSpec[]): OvsdbOperation[] {
  return addPortsOps(bridge, vifs.map(vifPortSpec));
}

/** One transaction removing the observed ports from the bridges that hold them. */
export function unplugOps(ports: readonly ObservedPort[]): OvsdbOperation[] {
  const byBridge = new Map<string, string[]>();
  for (const p of ports) {
    if (p.bridge === null) continue;
    byBridge.set(p.bridge, [...(byBridge.get(p.bridge) ?? []), p.uuid]);
  }
  return [...byBridge].flatMap(([bridge, uuids]) => delPortsOps(bridge, uuids));
}

const rowsOf = (r: OvsdbOpResult | undefined): OvsdbRow[] => r?.rows ?? [];
const str = (v: unknown) => (typeof v === 'string' ? v : null);

const INTERFACE_COLS = ['name', 'external_ids'];
const portByName = (n: string) => select('Port', [['name', '==', n]], ['_uuid', 'name']);
const bridgesWithPorts = () => select('Bridge', [], ['name', 'ports']);

/** Port rows (with their Interface's external_ids and the bridge holding them) as observed. */
function observedPorts(
  ifaces: readonly OvsdbOpResult[],
  bridges: OvsdbOpResult | undefined,
  ports: readonly OvsdbOpResult[],
): ObservedPort[] {
  const ids = new Map<string, Record<string, unknown>>();
  for (const row of ifaces.flatMap(rowsOf)) ids.set(String(row.name), fromMap(row.external_ids));
  const bridgeOf = new Map<string, string>();
  for (const b of rowsOf(bridges))
    for (const p of fromSet(b.ports)) if (isUuid(p)) bridgeOf.set(p[1], String(b.name));
  return ports.flatMap(rowsOf).flatMap((row) => {
    const ext = ids.get(String(row.name));
    if (!isUuid(row._uuid) || ext === undefined) return [];
    return [
      {
        uuid: row._uuid[1],
        name: String(row.name),
        bridge: bridgeOf.get(row._uuid[1]) ?? null,
        ifaceId: str(ext['iface-id']),
        attachedMac: str(ext['attached-mac']),
        vmUuid: str(ext['vm-uuid']),
      },
    ];
  });
}

/**
 * Ports named in `names`, or whose Interface carries `vm-uuid=<vmUuid>`. Read-only. The
 * Interface, Port and Bridge rows are read in one transaction (by name: the only round
 * trip; by vm-uuid: a second one, once the names are known), so a port is never seen
 * without the bridge that holds it.
 */
export async function findPorts(
  ovsdb: OvsdbClient,
  query: { names?: readonly string[]; vmUuid?: string },
): Promise<ObservedPort[]> {
  const names = query.names ?? [];
  if (!query.vmUuid) {
    if (names.length === 0) return [];
    const results = await ovsdb.transact(DB, [
      ...names.map((n) => select('Interface', [['name', '==', n]], INTERFACE_COLS)),
      bridgesWithPorts(),
      ...names.map(portByName),
    ]);
    const ifaces = results.slice(0, names.length);
    return observedPorts(ifaces, results[names.length], results.slice(names.length + 1));
  }
  const byVm = map({ 'vm-uuid': query.vmUuid });
  const ifaces = await ovsdb.transact(DB, [
    select('Interface', [['external_ids', 'includes', byVm]], INTERFACE_COLS),
    ...names.map((n) => select('Interface', [['name', '==', n]], INTERFACE_COLS)),
  ]);
  const found = [...new Set(ifaces.flatMap(rowsOf).map((r) => String(r.name)))];
  if (found.length === 0) return [];
  const [bridges, ...ports] = await ovsdb.transact(DB, [
    bridgesWithPorts(),
    ...found.map(portByName),
  ]);
  return observedPorts(ifaces, bridges, ports);
}

/**
 * Runs `ops` with next_cfg bumped, then waits (an OVSDB `wait` ovsdb-server holds) until
 * ovs-vswitchd reports it applied. Returns the results of `ops`.
 */
export async function transactApplied(
  ovsdb: OvsdbClient,
  ops: readonly OvsdbOperation[],
  timeoutMs = APPLY_TIMEOUT_MS,
): Promise<OvsdbOpResult[]> {
  const res = await ovsdb.transact(DB, [
    ...ops,
    mutate(DB, [], [['next_cfg', '+=', 1]]),
    select(DB, [], ['next_cfg']),
  ]);
  const want = Number(rowsOf(res.at(-1))[0]?.next_cfg);
  if (!Number.isInteger(want)) throw new Error('OVSDB transaction returned no next_cfg');
  await waitApplied(ovsdb, want, timeoutMs);
  return res.slice(0, ops.length);
}

/** Resolves once ovs-vswitchd's cur_cfg ≥ `cfg`; rejects after `timeoutMs`. */
export async function waitApplied(ovsdb: OvsdbClient, cfg: number, timeoutMs = APPLY_TIMEOUT_MS) {
  const op = wait(DB, [['cur_cfg', '>=', cfg]], {
    columns: ['cur_cfg'],
    until: '!=',
    rows: [],
    timeoutMs,
  });
  try {
    await ovsdb.transact(DB, [op], { timeoutMs: timeoutMs + 2000 });
  } catch (e) {
    // The connection itself failing keeps its class (a caller retries that).
    if (e instanceof SessionConnectionError) throw e;
    throw new Error(`ovs-vswitchd did not apply OVSDB cfg ${cfg} within ${timeoutMs} ms`, {
      cause: e,
    });
  }
}
