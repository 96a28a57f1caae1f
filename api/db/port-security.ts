/**
 * A port's firewall attributes (Neutron's port-security, securitygroups and
 * allowed-address-pairs extensions): port_security_enabled, its security groups (a set of
 * securitygroupportbindings rows) and its allowed address pairs.
 *
 * Invariants: everything a request sends is checked (pairs' addresses, the groups' existence
 * and visibility, port security's preconditions) before anything is written, and the writes
 * run in the port row's own transaction, so a refused request changes nothing; a port with
 * port security off has no groups and no pairs; a `network:*` port (router, DHCP, floating
 * IP) gets no default group (Neutron trusts it); a pair's MAC is the port's when none was
 * given. Groups are read with this module's own queries on the migration-14 tables.
 */
import { ApiError } from '../../contracts/errors.ts';
import {
  type AddressPair,
  type AddressPairRequest,
  MAX_ADDRESS_PAIRS,
} from '../../contracts/network.ts';
import { formatCidr, formatIp, parseCidr, parseIp } from '../ipam.ts';
import { queryIn } from './chunks.ts';
import { ensureDefaultSecurityGroup } from './default-sg.ts';
import type { Queryable } from './index.ts';
import { bool } from './neutron.ts';

/** What a create or update asks of the port's firewall attributes. */
export interface PortSecurityRequest {
  port_security_enabled?: boolean;
  security_groups?: string[] | null;
  allowed_address_pairs?: AddressPairRequest[] | null;
}

/** A pair checked: canonical address or CIDR; mac undefined when the client gave none. */
export interface CheckedPair {
  ip_address: string;
  mac_address: string | undefined;
}

const badRequest = (message: string) => new ApiError('BadRequest', message);

/** An address stays an address, a CIDR must be a network (Neutron's validate_subnet). */
function pairAddress(raw: string): string {
  if (raw.includes('/')) {
    const c = parseCidr(raw);
    if ('reason' in c) throw badRequest(c.reason);
    return formatCidr(c.cidr);
  }
  const ip = parseIp(raw);
  if (!ip) throw badRequest(`'${raw}' is not a valid IP address`);
  return formatIp(ip.version, ip.value);
}

/** Neutron's _validate_allowed_address_pairs: count, ip_address present, no duplicate. */
export function checkAddressPairs(
  pairs: readonly AddressPairRequest[] | null | undefined,
): CheckedPair[] | undefined {
  if (pairs === undefined) return undefined;
  if (pairs === null) return [];
  if (pairs.length > MAX_ADDRESS_PAIRS)
    throw new ApiError(
      'AllowedAddressPairExhausted',
      `The number of allowed address pair exceeds the maximum ${MAX_ADDRESS_PAIRS}.`,
    );
  const seen = new Set<string>();
  return pairs.map((p) => {
    if (p.ip_address === undefined)
      throw new ApiError(
        'AllowedAddressPairsMissingIP',
        'AllowedAddressPair must contain ip_address',
      );
    const mac = p.mac_address?.toLowerCase();
    const key = `${mac ?? ''} ${p.ip_address}`;
    if (seen.has(key))
      throw new ApiError(
        'DuplicateAddressPairInRequest',
        `Request contains duplicate address pair: mac_address ${mac ?? 'None'} ip_address ${p.ip_address}.`,
      );
    seen.add(key);
    return { ip_address: pairAddress(p.ip_address), mac_address: mac };
  });
}

export function securityGroupNotFound(ids: readonly string[]): ApiError {
  return new ApiError('SecurityGroupNotFound', `Security group ${ids.join(', ')} does not exist`);
}

/**
 * The distinct groups of `ids`, each existing and the port project's (any project's for an
 * admin: `projectId` undefined); SecurityGroupNotFound names the others.
 */
export async function checkGroups(
  tx: Queryable,
  ids: readonly string[],
  projectId: string | undefined,
): Promise<string[]> {
  const wanted = [...new Set(ids)].sort();
  const rows = await queryIn<{ id: string; project_id: string }>(
    tx,
    wanted,
    (list) => `SELECT id, project_id FROM securitygroups WHERE id IN ${list}`,
  );
  const ok = new Set(
    rows.filter((r) => projectId === undefined || r.project_id === projectId).map((r) => r.id),
  );
  const missing = wanted.filter((id) => !ok.has(id));
  if (missing.length) throw securityGroupNotFound(missing);
  return wanted;
}

const psecRequired = () =>
  new ApiError(
    'PortSecurityAndIPRequiredForSecurityGroups',
    'Port security must be enabled and port must have an IP address in order to use security groups.',
  );
const pairsNeedPsec = () =>
  new ApiError(
    'AddressPairAndPortSecurityRequired',
    'Port Security must be enabled in order to have allowed address pairs on a port.',
  );

/** The port being made: who owns it, what it is, and whether its network filters. */
export interface NewPortFacts {
  projectId: string;
  deviceOwner: string;
  networkPortSecurity: boolean;
  /** Undefined: the caller is an admin (any project's group will do). */
  groupScope: string | undefined;
}

/** The firewall attributes a new port gets, checked; nothing written yet. */
export async function portSecurityOnCreate(
  tx: Queryable,
  req: PortSecurityRequest,
  facts: NewPortFacts,
  now: Date,
) {
  const pairs = checkAddressPairs(req.allowed_address_pairs) ?? [];
  const enabled = req.port_security_enabled ?? facts.networkPortSecurity;
  const asked = req.security_groups ?? undefined;
  const trusted = facts.deviceOwner.startsWith('network:');
  const groups =
    asked === undefined || trusted ? [] : await checkGroups(tx, asked, facts.groupScope);
  if (!enabled && pairs.length) throw pairsNeedPsec();
  if (!enabled && groups.length) throw psecRequired();
  if (enabled && !trusted && asked === undefined)
    groups.push(await ensureDefaultSecurityGroup(tx, facts.projectId, now));
  return { enabled, groups, pairs };
}

/** The port as it is: what an update starts from. */
export interface CurrentPortSecurity {
  project_id: string;
  port_security_enabled: boolean;
  security_groups: readonly string[];
  allowed_address_pairs: readonly AddressPair[];
}

/**
 * An update's firewall attributes, checked against the port as it is: groups and pairs
 * are replaced when sent; port security goes off only with neither left (409s), and a
 * request sending groups or pairs to a port without it is refused.
 */
export async function portSecurityOnUpdate(
  tx: Queryable,
  req: PortSecurityRequest,
  current: CurrentPortSecurity,
  anyGroup: boolean,
) {
  const pairs = checkAddressPairs(req.allowed_address_pairs);
  const asked = req.security_groups ?? (req.security_groups === null ? [] : undefined);
  const scope = anyGroup ? undefined : current.project_id;
  const groups = asked === undefined ? undefined : await checkGroups(tx, asked, scope);
  const enabled = req.port_security_enabled ?? current.port_security_enabled;
  if (!enabled) {
    if (pairs?.length) throw pairsNeedPsec();
    if (pairs === undefined && current.allowed_address_pairs.length) throw pairsNeedPsec();
    if (groups?.length) throw psecRequired();
    if (groups === undefined && current.security_groups.length)
      throw new ApiError(
        'PortSecurityPortHasSecurityGroup',
        'Port has security group associated. Cannot disable port security or IP address until security group is removed.',
      );
  }
  return { enabled, groups, pairs };
}

/** Writes what an update checked (groups and pairs sent); whether it rewrote any. */
export async function writePortSecurity(
  tx: Queryable,
  portId: string,
  fw: { groups?: readonly string[]; pairs?: readonly CheckedPair[] },
  mac: string,
): Promise<boolean> {
  if (fw.groups) await writeGroups(tx, portId, fw.groups);
  if (fw.pairs) await writePairs(tx, portId, fw.pairs, mac);
  return fw.groups !== undefined || fw.pairs !== undefined;
}

/** Replaces the port's groups. */
export async function writeGroups(tx: Queryable, portId: string, groups: readonly string[]) {
  await tx.query('DELETE FROM securitygroupportbindings WHERE port_id = ?', [portId]);
  for (const g of groups)
    await tx.query(
      'INSERT INTO securitygroupportbindings (port_id, security_group_id) VALUES (?, ?)',
      [portId, g],
    );
}

/** Replaces the port's pairs; a pair without a MAC takes `mac`, the port's. */
export async function writePairs(
  tx: Queryable,
  portId: string,
  pairs: readonly CheckedPair[],
  mac: string,
) {
  await tx.query('DELETE FROM allowedaddresspairs WHERE port_id = ?', [portId]);
  const rows = new Map(pairs.map((p) => [`${p.mac_address ?? mac} ${p.ip_address}`, p]));
  for (const p of rows.values())
    await tx.query(
      'INSERT INTO allowedaddresspairs (port_id, mac_address, ip_address) VALUES (?, ?, ?)',
      [portId, p.mac_address ?? mac, p.ip_address],
    );
}

/** The groups and pairs of each port of `ids` (groups sorted, pairs by MAC then address). */
export async function portSecurityOf(tx: Queryable, ids: readonly string[]) {
  const out = new Map(
    ids.map((id) => [id, { groups: [] as string[], pairs: [] as AddressPair[] }]),
  );
  const groups = await queryIn<{ port_id: string; security_group_id: string }>(
    tx,
    ids,
    (list) => `SELECT port_id, security_group_id FROM securitygroupportbindings
        WHERE port_id IN ${list} ORDER BY security_group_id`,
  );
  for (const r of groups) out.get(r.port_id)?.groups.push(r.security_group_id);
  const pairs = await queryIn<{ port_id: string; mac_address: string; ip_address: string }>(
    tx,
    ids,
    (list) => `SELECT port_id, mac_address, ip_address FROM allowedaddresspairs
        WHERE port_id IN ${list} ORDER BY mac_address, ip_address`,
  );
  for (const r of pairs)
    out.get(r.port_id)?.pairs.push({ ip_address: r.ip_address, mac_address: r.mac_address });
  return out;
}

/** The network's owner and port security default; undefined when it does not exist. */
export async function networkDefaults(tx: Queryable, networkId: string) {
  const [row] = await tx.query<{ project_id: string; port_security_enabled: unknown }>(
    'SELECT project_id, port_security_enabled FROM networks WHERE id = ?',
    [networkId],
  );
  return row && { owner: row.project_id, portSecurity: bool(row.port_security_enabled) };
}
