/**
 * Ports as agents and instances see them: the L2 agent's device rows (port with its
 * network's segment) and binding, the addresses a server view lists, and who holds a
 * fixed IP.
 *
 * Invariant: a port is bound to a host only while unbound (`host_id = ''` in the UPDATE
 * itself), so two L2 agents asking at once cannot both get it; every list of ids is read
 * with queryIn, whatever its length.
 */
import { queryIn } from './chunks.ts';
import type { Queryable } from './index.ts';
import { portSecurityOf } from './port-security.ts';

export interface DeviceRow {
  id: string;
  network_id: string;
  mac_address: string;
  admin_state_up: unknown;
  host_id: string;
  device_owner: string;
  port_security_enabled: unknown;
  network_type: string;
  physical_network: string | null;
  segmentation_id: unknown;
}

/** The ports of `ids` that exist, each with its network's segment (type, physnet, id). */
export function deviceRows(tx: Queryable, ids: readonly string[]): Promise<DeviceRow[]> {
  return queryIn<DeviceRow & Record<string, unknown>>(
    tx,
    ids,
    (list) => `SELECT p.id, p.network_id, p.mac_address, p.admin_state_up, p.host_id,
        p.device_owner, p.port_security_enabled, n.network_type, n.physical_network, n.segmentation_id
       FROM ports p JOIN networks n ON n.id = p.network_id WHERE p.id IN ${list}`,
  );
}

/** What the firewall needs of each port of `ids`: fixed IPs, groups, allowed pairs. */
export async function deviceFilters(tx: Queryable, ids: readonly string[]) {
  const security = await portSecurityOf(tx, ids);
  const ips = await queryIn<{ port_id: string; ip_address: string }>(
    tx,
    ids,
    (list) =>
      `SELECT port_id, ip_address FROM ipallocations WHERE port_id IN ${list} ORDER BY ip_address`,
  );
  const ipsOf = new Map<string, string[]>();
  for (const r of ips) ipsOf.set(r.port_id, [...(ipsOf.get(r.port_id) ?? []), r.ip_address]);
  return new Map(
    ids.map((id) => [
      id,
      {
        ips: ipsOf.get(id) ?? [],
        groups: security.get(id)?.groups ?? [],
        pairs: security.get(id)?.pairs ?? [],
      },
    ]),
  );
}

/** Binds an unbound port to `host` (revision bumped); nothing when it is bound already. */
export async function bindUnbound(tx: Queryable, portId: string, host: string): Promise<void> {
  await tx.query(
    "UPDATE ports SET host_id = ?, revision_number = revision_number + 1 WHERE id = ? AND host_id = ''",
    [host, portId],
  );
}

export interface DeviceAddress {
  id: string;
  device_id: string;
  mac_address: string;
  ip_address: string;
  name: string;
  network_id: string;
}

/** Every fixed IP of the ports whose device is one of `deviceIds`, with network names. */
export function deviceAddresses(
  db: Queryable,
  deviceIds: readonly string[],
): Promise<DeviceAddress[]> {
  return queryIn<DeviceAddress & Record<string, unknown>>(
    db,
    deviceIds,
    (list) => `SELECT p.id, p.device_id, p.mac_address, a.ip_address, n.name, n.id AS network_id
       FROM ports p JOIN networks n ON n.id = p.network_id
       JOIN ipallocations a ON a.port_id = p.id
      WHERE p.device_id IN ${list}
      ORDER BY p.created_at, p.id, a.ip_address`,
  );
}

/** The device of the port holding `ip` on the network, or undefined when it is free. */
export async function fixedIpHolder(
  db: Queryable,
  networkId: string,
  ip: string,
): Promise<string | undefined> {
  const [used] = await db.query<{ device_id: string }>(
    `SELECT p.device_id FROM ipallocations a JOIN ports p ON p.id = a.port_id
      WHERE a.network_id = ? AND a.ip_address = ?`,
    [networkId, ip],
  );
  return used?.device_id;
}
