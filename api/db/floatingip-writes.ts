/**
 * Floating IP creates, updates and deletes. A floating IP holds its address through a
 * port on the external network (device_owner network:floatingip, device_id the floating
 * IP's id, no project: Neutron hides it from tenants), made and removed with it.
 *
 * Invariants: one transaction per request — quota, the port, its address, the
 * association checks (floatingip-assoc.ts) and the row — so a refused request changes
 * nothing and a floating IP never exists without its port nor its port without it; the
 * address is IPv4 and never a subnet's gateway; status is DOWN on create and whenever the
 * association (port, fixed address or router) changes, until the L3 agent reports it.
 * Every change bumps revision_number.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import type { FloatingIp, FloatingIpUpdate } from '../../contracts/floatingip.ts';
import { type FixedIpRequest, FLOATINGIP_OWNER } from '../../contracts/network.ts';
import { parseIp } from '../ipam.ts';
import {
  type Association,
  alreadyAssociated,
  badFloatingIp,
  type Caller,
  type FipSide,
  resolveAssociation,
} from './floatingip-assoc.ts';
import {
  type FloatingIpRow,
  floatingIpNotFound,
  floatingIpRow,
  toFloatingIp,
} from './floatingips.ts';
import type { Db, Queryable } from './index.ts';
import { constraintKind, guardQuota, type QuotaGuard, resourceTime } from './neutron.ts';
import { allocateFixedIps, chooseMac, refuseGatewayHolder } from './port-ipam.ts';

export interface FloatingIpCreateRequest {
  floating_network_id: string;
  project_id: string;
  floating_ip_address?: string | null | undefined;
  subnet_id?: string | null | undefined;
  port_id?: string | null | undefined;
  fixed_ip_address?: string | null | undefined;
  description?: string | undefined;
}

/** Neutron: a fixed address only comes with the port that holds it. */
function refuseFixedWithoutPort(req: { port_id?: unknown; fixed_ip_address?: unknown }) {
  if (req.fixed_ip_address && !req.port_id)
    throw badFloatingIp('fixed_ip_address cannot be specified without a port_id');
}

/** The external network's IPv4 subnets, oldest first; none is Neutron's 400. */
async function ipv4Subnets(tx: Queryable, networkId: string): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    'SELECT id FROM subnets WHERE network_id = ? AND ip_version = 4 ORDER BY created_at, id',
    [networkId],
  );
  if (rows.length === 0)
    throw badFloatingIp(`Network ${networkId} does not contain any IPv4 subnet`);
  return rows.map((r) => r.id);
}

/** The floating IP's port row (no address yet): Neutron's hidden, unbound, N/A port. */
async function insertFloatingPort(
  tx: Queryable,
  portId: string,
  fipId: string,
  networkId: string,
  at: string,
) {
  const mac = await chooseMac(tx, networkId);
  await tx.query(
    `INSERT INTO ports (id, network_id, project_id, name, description, mac_address,
       admin_state_up, status, device_id, device_owner, host_id, vnic_type, profile,
       revision_number, created_at, updated_at)
     VALUES (?, ?, '', '', '', ?, ?, 'N/A', ?, ?, '', 'normal', '{}', 1, ?, ?)`,
    [portId, networkId, mac, true, fipId, FLOATINGIP_OWNER, at, at],
  );
}

/** Allocates the floating address: the one asked for, else the first IPv4 subnet with room. */
async function allocateFloatingAddress(
  tx: Queryable,
  req: FloatingIpCreateRequest,
  portId: string,
) {
  const networkId = req.floating_network_id;
  const subnets = await ipv4Subnets(tx, networkId);
  const asked: FixedIpRequest = {
    ...(req.subnet_id ? { subnet_id: req.subnet_id } : {}),
    ...(req.floating_ip_address ? { ip_address: req.floating_ip_address } : {}),
  };
  if (asked.subnet_id || asked.ip_address) await allocateFixedIps(tx, networkId, portId, [asked]);
  else await allocateFirstFree(tx, networkId, portId, subnets);
  await refuseGatewayHolder(tx, portId, FLOATINGIP_OWNER);
  const rows = await tx.query<{ ip_address: string }>(
    'SELECT ip_address FROM ipallocations WHERE port_id = ?',
    [portId],
  );
  const v4 = rows.find((r) => parseIp(r.ip_address)?.version === 4);
  if (!v4) throw badFloatingIp(`Unable to find any IPv4 address on external network ${networkId}`);
  return v4.ip_address;
}

/** Tries each subnet in turn; the last one's exhaustion is the error. */
async function allocateFirstFree(
  tx: Queryable,
  networkId: string,
  portId: string,
  subnets: string[],
) {
  for (const [i, subnetId] of subnets.entries()) {
    try {
      return await allocateFixedIps(tx, networkId, portId, [{ subnet_id: subnetId }]);
    } catch (e) {
      const full = e instanceof ApiError && e.type === 'IpAddressGenerationFailure';
      if (!full || i === subnets.length - 1) throw e;
    }
  }
}

/** A constraint violation that slipped past the checks (a race) as Neutron's error. */
function raced(e: unknown, fip: FipSide | undefined, assoc: Association | undefined): unknown {
  const kind = constraintKind(e);
  if (kind === 'unique' && fip && assoc)
    return alreadyAssociated(fip, assoc.fixed_port_id, assoc.fixed_ip_address);
  if (kind === 'foreign_key' || kind === 'unique')
    return new ApiError(
      'Conflict',
      'A port, network or router changed concurrently; retry the request.',
    );
  return e;
}

/** The floating IP's row, DOWN, with its association if it has one. */
async function insertRow(
  tx: Queryable,
  fip: FipSide & { description: string; floating_port_id: string },
  assoc: Association | undefined,
  at: string,
) {
  await tx.query(
    `INSERT INTO floatingips (id, project_id, description, floating_network_id, floating_port_id,
       floating_ip_address, fixed_port_id, fixed_ip_address, router_id, status, revision_number,
       created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'DOWN', 1, ?, ?)`,
    [
      fip.id,
      fip.project_id,
      fip.description,
      fip.floating_network_id,
      fip.floating_port_id,
      fip.floating_ip_address,
      assoc?.fixed_port_id ?? null,
      assoc?.fixed_ip_address ?? null,
      assoc?.router_id ?? null,
      at,
      at,
    ],
  );
}

export async function createFloatingIp(
  db: Db,
  req: FloatingIpCreateRequest,
  caller: Caller,
  now: Date,
  quota?: QuotaGuard,
): Promise<FloatingIp> {
  refuseFixedWithoutPort(req);
  const id = randomUUID();
  const portId = randomUUID();
  const at = resourceTime(now);
  const seen: { fip?: FipSide; assoc?: Association } = {};
  try {
    await db.transaction(async (tx) => {
      await guardQuota(tx, quota, req.project_id, 'floatingip');
      await insertFloatingPort(tx, portId, id, req.floating_network_id, at);
      const address = await allocateFloatingAddress(tx, req, portId);
      const { project_id, floating_network_id } = req;
      const fip = { id, project_id, floating_network_id, floating_ip_address: address };
      seen.fip = fip;
      const want = { port_id: req.port_id ?? '', fixed_ip_address: req.fixed_ip_address };
      if (want.port_id) seen.assoc = await resolveAssociation(tx, fip, want, caller);
      const own = { ...fip, description: req.description ?? '', floating_port_id: portId };
      await insertRow(tx, own, seen.assoc, at);
    });
  } catch (e) {
    throw raced(e, seen.fip, seen.assoc);
  }
  const row = await floatingIpRow(db, id);
  if (!row) throw floatingIpNotFound(id);
  return toFloatingIp(row);
}

const current = (row: FloatingIpRow): Association | undefined =>
  row.fixed_port_id && row.fixed_ip_address && row.router_id
    ? {
        fixed_port_id: row.fixed_port_id,
        fixed_ip_address: row.fixed_ip_address,
        router_id: row.router_id,
      }
    : undefined;

const sameAssociation = (a: Association | undefined, b: Association | undefined) =>
  a?.fixed_port_id === b?.fixed_port_id &&
  a?.fixed_ip_address === b?.fixed_ip_address &&
  a?.router_id === b?.router_id;

/** The association an update asks for: port_id absent keeps it, null clears it. */
async function wantedAssociation(
  tx: Queryable,
  row: FloatingIpRow,
  changes: FloatingIpUpdate,
  caller: Caller,
) {
  if (changes.port_id === undefined) return current(row);
  if (changes.port_id === null) return undefined;
  return resolveAssociation(
    tx,
    row,
    { port_id: changes.port_id, fixed_ip_address: changes.fixed_ip_address },
    caller,
  );
}

export interface FloatingIpChange {
  before: FloatingIp;
  after: FloatingIp;
}

/** Writes `assoc` and `description` to row `id` with a revision bump, if anything changed. */
async function writeUpdate(
  tx: Queryable,
  row: FloatingIpRow,
  assoc: Association | undefined,
  description: string | undefined,
  now: Date,
) {
  const moved = !sameAssociation(current(row), assoc);
  const described = description !== undefined && description !== row.description;
  if (!moved && !described) return;
  await tx.query(
    `UPDATE floatingips SET fixed_port_id = ?, fixed_ip_address = ?, router_id = ?,
        status = CASE WHEN ? THEN 'DOWN' ELSE status END, description = COALESCE(?, description),
        revision_number = revision_number + 1, updated_at = ?
      WHERE id = ?`,
    [
      assoc?.fixed_port_id ?? null,
      assoc?.fixed_ip_address ?? null,
      assoc?.router_id ?? null,
      moved,
      description ?? null,
      resourceTime(now),
      row.id,
    ],
  );
}

/** Associates, disassociates or describes floating IP `id`; both versions returned. */
export async function updateFloatingIp(
  db: Db,
  id: string,
  changes: FloatingIpUpdate,
  caller: Caller,
  now: Date,
): Promise<FloatingIpChange> {
  refuseFixedWithoutPort(changes);
  let before: FloatingIpRow | undefined;
  let assoc: Association | undefined;
  try {
    await db.transaction(async (tx) => {
      before = await floatingIpRow(tx, id);
      if (!before) throw floatingIpNotFound(id);
      assoc = await wantedAssociation(tx, before, changes, caller);
      await writeUpdate(tx, before, assoc, changes.description, now);
    });
  } catch (e) {
    throw raced(e, before, assoc);
  }
  const after = await floatingIpRow(db, id);
  if (!before || !after) throw floatingIpNotFound(id);
  return { before: toFloatingIp(before), after: toFloatingIp(after) };
}

/** Deletes floating IP `id` with its port and address; returns what it was. */
export async function deleteFloatingIp(db: Db, id: string): Promise<FloatingIp> {
  const row = await db.transaction(async (tx) => {
    const found = await floatingIpRow(tx, id);
    if (!found) throw floatingIpNotFound(id);
    await tx.query('DELETE FROM floatingips WHERE id = ?', [id]);
    await tx.query('DELETE FROM ipallocations WHERE port_id = ?', [found.floating_port_id]);
    await tx.query('DELETE FROM ports WHERE id = ?', [found.floating_port_id]);
    return found;
  });
  return toFloatingIp(row);
}
