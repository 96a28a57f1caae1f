/**
 * Security group rows for suites that test what reads them (RPC, hints) without the
 * security group routes: groups, rules, port bindings and allowed address pairs written
 * by direct SQL into migration 14's tables, plus a network with an IPv4 and an IPv6
 * subnet made through the real ports and networks API.
 *
 * Invariant: only test code calls these; every value is written as bound parameters, in
 * the stored forms the API itself writes (protocol as Neutron's lower-case text).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../api/db/index.ts';
import { createPort } from '../../api/db/ports.ts';
import type { Port } from '../../contracts/network.ts';

const AT = '2026-11-22T10:00:00Z';

export interface SeedRule {
  direction?: 'ingress' | 'egress';
  ethertype?: 'IPv4' | 'IPv6';
  protocol?: string | null;
  min?: number | null;
  max?: number | null;
  prefix?: string | null;
  remote?: string | null;
}

/** A group of `projectId` named `name`, with no rules. */
export async function seedGroup(db: Db, projectId: string, name: string): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO securitygroups (id, project_id, name, description, revision_number,
       created_at, updated_at) VALUES (?, ?, ?, '', 1, ?, ?)`,
    [id, projectId, name, AT, AT],
  );
  return id;
}

/** One rule in `groupId` (ingress IPv4, any protocol, when unsaid); its id. */
export async function seedRule(db: Db, groupId: string, r: SeedRule): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO securitygrouprules (id, security_group_id, project_id, direction, ethertype,
       protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id,
       description, revision_number, created_at, updated_at)
     VALUES (?, ?, 'p1', ?, ?, ?, ?, ?, ?, ?, '', 1, ?, ?)`,
    [
      id,
      groupId,
      r.direction ?? 'ingress',
      r.ethertype ?? 'IPv4',
      r.protocol ?? null,
      r.min ?? null,
      r.max ?? null,
      r.prefix ?? null,
      r.remote ?? null,
      AT,
      AT,
    ],
  );
  return id;
}

/** Puts `portId` in each group of `groupIds`. */
export async function bindGroups(db: Db, portId: string, ...groupIds: string[]) {
  for (const g of groupIds)
    await db.query(
      'INSERT INTO securitygroupportbindings (port_id, security_group_id) VALUES (?, ?)',
      [portId, g],
    );
}

/** An allowed address pair of `port`, stored as given (its own MAC). */
export async function seedPair(db: Db, port: Port, ip: string) {
  await db.query(
    'INSERT INTO allowedaddresspairs (port_id, mac_address, ip_address) VALUES (?, ?, ?)',
    [port.id, port.mac_address, ip],
  );
}

/** A network with subnets 10.5.0.0/24 and fd00:5::/64, through the API; its id. */
export async function dualStackNetwork(app: FastifyInstance, token: string): Promise<string> {
  const post = async (url: string, payload: unknown) => {
    const res = await app.inject({
      method: 'POST',
      url,
      payload: payload as string,
      headers: { 'x-auth-token': token },
    });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as Record<string, { id: string }>;
  };
  const net = (await post('/v2.0/networks', { network: { name: 'sg' } })).network?.id as string;
  for (const [v, cidr] of [
    [4, '10.5.0.0/24'],
    [6, 'fd00:5::/64'],
  ] as const)
    await post('/v2.0/subnets', {
      subnet: { network_id: net, cidr, ip_version: v, enable_dhcp: false },
    });
  return net;
}

/** A port on `networkId` bound to `host` ('' = unbound) with the given fixed IPs. */
export function seedPort(db: Db, networkId: string, host: string, ips: string[]): Promise<Port> {
  return createPort(
    db,
    {
      network_id: networkId,
      project_id: 'p1',
      'binding:host_id': host,
      fixed_ips: ips.map((ip_address) => ({ ip_address })),
      // The tests bind their groups themselves (bindGroups), not the project's default.
      security_groups: [],
    },
    new Date(AT),
  );
}
