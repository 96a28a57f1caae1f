/**
 * The metadata RPC calls: get_metadata_instance (a relay asks which instance has `ip` on
 * a router's networks or on a network) and get_config_drive (a compute agent asks for the
 * files of an instance it runs).
 *
 * Invariants: a relay learns only about routers bound to its host's L3 agent and networks
 * bound to its host's DHCP agent; an address names an instance only when exactly one live
 * instance holds it on those networks on one of its own NICs (a compute:* port whose
 * device_id is the instance and which is in the instance's port_order), so
 * overlapping addresses on two networks resolve per network and an ambiguous one to
 * nobody; a config drive is given only to the instance's own host, built by the same
 * content builder the listener uses.
 */
import { randomBytes } from 'node:crypto';
import type { ArgsOf } from '../contracts/messages.ts';
import type { MetadataInstance } from '../contracts/metadata.ts';
import { ROUTER_INTERFACE_OWNER } from '../contracts/network.ts';
import { queryIn } from './db/chunks.ts';
import { servesNetwork } from './db/dhcp-bindings.ts';
import type { Db, Queryable } from './db/index.ts';
import { servesRouter } from './db/l3-bindings.ts';
import { configDriveFiles } from './metadata/content.ts';
import { loadInstanceData } from './metadata/instance-data.ts';

/** The networks a relay may look in: the router's interface networks, or the network. */
async function networksOf(db: Queryable, args: ArgsOf<'get_metadata_instance'>) {
  if (args.router_id !== undefined) {
    if (!(await servesRouter(db, args.router_id, args.host))) return [];
    const rows = await db.query<{ network_id: string }>(
      `SELECT DISTINCT p.network_id FROM router_ports rp JOIN ports p ON p.id = rp.port_id
        WHERE rp.router_id = ? AND rp.port_type = ?`,
      [args.router_id, ROUTER_INTERFACE_OWNER],
    );
    return rows.map((r) => r.network_id);
  }
  if (args.network_id === undefined) return [];
  return (await servesNetwork(db, args.network_id, args.host)) ? [args.network_id] : [];
}

interface Holder {
  id: string;
  project_id: string;
  port_id: string;
  port_order: string;
  [k: string]: unknown;
}

export async function getMetadataInstance(
  db: Db,
  args: ArgsOf<'get_metadata_instance'>,
): Promise<{ instance: MetadataInstance | null }> {
  const networks = await networksOf(db, args);
  const rows = await queryIn<Holder>(
    db,
    networks,
    (list) => `SELECT i.id, i.project_id, i.port_order, p.id AS port_id FROM ipallocations a
      JOIN ports p ON p.id = a.port_id JOIN instances i ON i.id = p.device_id
      WHERE a.ip_address = ? AND p.device_owner LIKE 'compute:%' AND i.deleted_at IS NULL
        AND a.network_id IN ${list}`,
    [args.ip],
  );
  // Only the instance's own NICs: a port that merely names an instance as its device
  // (anyone may create one) must not speak for it.
  const nics = rows.filter((r) => (JSON.parse(r.port_order) as string[]).includes(r.port_id));
  const found = [...new Map(nics.map((r) => [r.id, r])).values()];
  const [only] = found;
  if (found.length !== 1 || !only) return { instance: null };
  return { instance: { instance_id: only.id, project_id: only.project_id } };
}

export async function getConfigDrive(deps: { db: Db }, args: ArgsOf<'get_config_drive'>) {
  const data = await loadInstanceData(deps.db, args.instance_id);
  if (!data || data.record.host !== args.host) return { files: null };
  const files = configDriveFiles(data, () => randomBytes(512));
  return {
    files: files.map((f) => ({ path: f.path, content_base64: f.content.toString('base64') })),
  };
}
