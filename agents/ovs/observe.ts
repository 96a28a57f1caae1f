/**
 * What Open vSwitch has, as the ovs agent sees it: a replica of the Open_vSwitch,
 * Bridge, Port and Interface tables kept by an OVSDB monitor, read into plain objects.
 *
 * Invariant: the replica changes only through `applyUpdates` with what ovsdb-server sent
 * (the initial monitor reply, then `update` notifications), so it is observation, never
 * our intent; `readState` is pure.
 */
import {
  fromMap,
  fromOptional,
  fromSet,
  type MonitorRequests,
  type OvsdbRow,
  type OvsdbUuid,
  type OvsdbValue,
  type TableUpdates,
} from '../../host/ovs/ovsdb-types.ts';

export const MONITORED: MonitorRequests = {
  Open_vSwitch: { columns: ['bridges', 'cur_cfg', 'next_cfg'] },
  Bridge: { columns: ['name', 'ports', 'fail_mode', 'datapath_type', 'external_ids'] },
  Port: { columns: ['name', 'interfaces', 'tag', 'other_config', 'external_ids'] },
  Interface: { columns: ['name', 'type', 'ofport', 'options', 'external_ids', 'mac_in_use'] },
};

export type Replica = Record<string, Map<string, OvsdbRow>>;

export function emptyReplica(): Replica {
  return Object.fromEntries(Object.keys(MONITORED).map((t) => [t, new Map<string, OvsdbRow>()]));
}

export function applyUpdates(replica: Replica, updates: TableUpdates): void {
  for (const [table, rows] of Object.entries(updates)) {
    const target = replica[table];
    if (!target) continue;
    for (const [uuid, change] of Object.entries(rows)) {
      if (change.new) target.set(uuid, { ...(target.get(uuid) ?? {}), ...change.new });
      else target.delete(uuid);
    }
  }
}

export interface OvsInterface {
  uuid: string;
  name: string;
  type: string;
  ofport: number | null;
  options: Record<string, string>;
  externalIds: Record<string, string>;
}

export interface OvsPort {
  uuid: string;
  name: string;
  bridge: string | null;
  tag: number | null;
  otherConfig: Record<string, string>;
  interfaces: OvsInterface[];
}

export interface OvsBridge {
  uuid: string;
  name: string;
  failMode: string | null;
  datapathType: string;
  ports: string[];
}

export interface OvsState {
  rootUuid: string | null;
  curCfg: number;
  nextCfg: number;
  bridges: Map<string, OvsBridge>;
  /** Ports by name. */
  ports: Map<string, OvsPort>;
}

const uuids = (v: OvsdbValue | undefined) => fromSet<OvsdbUuid>(v).map((u) => u[1]);
const strMap = (v: OvsdbValue | undefined) => fromMap(v) as Record<string, string>;

function readInterface(uuid: string, row: OvsdbRow): OvsInterface {
  const ofport = fromOptional<number>(row.ofport);
  return {
    uuid,
    name: String(row.name),
    type: String(row.type ?? ''),
    ofport: typeof ofport === 'number' && ofport > 0 ? ofport : null,
    options: strMap(row.options),
    externalIds: strMap(row.external_ids),
  };
}

export function readState(replica: Replica): OvsState {
  const [rootUuid, root] = [...(replica.Open_vSwitch ?? new Map())][0] ?? [null, undefined];
  const bridges = new Map<string, OvsBridge>();
  const bridgeOfPort = new Map<string, string>();
  for (const [uuid, row] of replica.Bridge ?? []) {
    const ports = uuids(row.ports);
    const name = String(row.name);
    bridges.set(name, {
      uuid,
      name,
      failMode: (fromOptional<string>(row.fail_mode) as string | undefined) ?? null,
      datapathType: String(row.datapath_type ?? ''),
      ports,
    });
    for (const p of ports) bridgeOfPort.set(p, name);
  }
  const ifaces = replica.Interface ?? new Map();
  const ports = new Map<string, OvsPort>();
  for (const [uuid, row] of replica.Port ?? []) {
    const tag = fromOptional<number>(row.tag);
    ports.set(String(row.name), {
      uuid,
      name: String(row.name),
      bridge: bridgeOfPort.get(uuid) ?? null,
      tag: typeof tag === 'number' ? tag : null,
      otherConfig: strMap(row.other_config),
      interfaces: uuids(row.interfaces).flatMap((i) => {
        const r = ifaces.get(i);
        return r ? [readInterface(i, r)] : [];
      }),
    });
  }
  return {
    rootUuid,
    curCfg: Number(root?.cur_cfg ?? 0),
    nextCfg: Number(root?.next_cfg ?? 0),
    bridges,
    ports,
  };
}
