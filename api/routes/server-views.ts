/**
 * Nova v2.1 server representations: the detailed view (status from vm_state/task_state,
 * addresses, links, the admin-only host attributes, an ERROR server's fault) as GET
 * /servers/{id}, /servers/detail and PUT /servers/{id} return it.
 *
 * Invariant: a view shows only the instance's own ports (port_order, NIC order), the
 * NICs its spec has; a port that merely names the instance as its device is not one.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { serverStatus } from '../../contracts/servers.ts';
import { deviceAddresses } from '../db/port-devices.ts';
import { type InstanceRecord, inPortOrder } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { base, links } from './nova.ts';

const bookmark = (req: FastifyRequest, kind: string, id: string) => ({
  id,
  links: [{ rel: 'bookmark', href: `${base(req, '')}/${kind}/${encodeURIComponent(id)}` }],
});
/** Nova's OS-SRV-USG timestamps: `2026-11-22T10:00:00.000000`. */
const usage = (t: string | null) => (t === null ? null : `${t.slice(0, 19)}.000000`);

type Addresses = Record<string, { version: 4 | 6; addr: string; [k: string]: unknown }[]>;

/** addresses per instance: {network name: [fixed IPs with the port's MAC]}, NIC order;
 * only the instance's own ports (port_order), as its spec has them. */
async function addressesOf(deps: AppDeps, list: InstanceRecord[]) {
  const out = new Map<string, Addresses>(list.map((i) => [i.id, {}]));
  const rows = await deviceAddresses(
    deps.db,
    list.map((i) => i.id),
  );
  const byDevice = Map.groupBy(rows, (r) => r.device_id);
  for (const inst of list) {
    const addresses = out.get(inst.id) as Addresses;
    const own = (byDevice.get(inst.id) ?? []).filter((r) => inst.portOrder.includes(r.id));
    for (const r of inPortOrder(inst.portOrder, own)) {
      const label = r.name || r.network_id;
      addresses[label] ??= [];
      addresses[label].push({
        version: r.ip_address.includes(':') ? 6 : 4,
        addr: r.ip_address,
        'OS-EXT-IPS:type': 'fixed',
        'OS-EXT-IPS-MAC:mac_addr': r.mac_address,
      });
    }
  }
  return out;
}

/** What only an admin sees of a server. */
function adminView(i: InstanceRecord) {
  const host = i.host || null;
  return {
    'OS-EXT-SRV-ATTR:host': host,
    'OS-EXT-SRV-ATTR:instance_name': `instance-${i.seq.toString(16).padStart(8, '0')}`,
    'OS-EXT-SRV-ATTR:hypervisor_hostname': host,
  };
}

/** An ERROR server's fault; its details for an admin only. */
function faultView(i: InstanceRecord, admin: boolean) {
  if (serverStatus(i.vmState, i.taskState) !== 'ERROR' || !i.fault) return {};
  const { code, message, created, details } = i.fault;
  return {
    fault: admin ? { code, message, created, details: details ?? '' } : { code, message, created },
  };
}

const hostIdOf = (i: InstanceRecord) =>
  i.host
    ? createHash('sha224')
        .update(i.projectId + i.host)
        .digest('hex')
    : '';

function serverView(req: FastifyRequest, prefix: string, i: InstanceRecord, addr: Addresses) {
  const admin = req.role === 'admin';
  return {
    id: i.id,
    name: i.name,
    status: serverStatus(i.vmState, i.taskState),
    tenant_id: i.projectId,
    user_id: i.userId,
    metadata: i.metadata,
    hostId: hostIdOf(i),
    image: bookmark(req, 'images', i.imageId),
    flavor: bookmark(req, 'flavors', i.flavor.id),
    created: i.createdAt,
    updated: i.updatedAt,
    addresses: addr,
    accessIPv4: '',
    accessIPv6: '',
    links: links(req, prefix, 'servers', i.id),
    'OS-DCF:diskConfig': 'MANUAL',
    progress: 0,
    'OS-EXT-AZ:availability_zone': 'nova',
    config_drive: '',
    key_name: null,
    'OS-SRV-USG:launched_at': usage(i.launchedAt),
    'OS-SRV-USG:terminated_at': usage(i.deletedAt),
    'OS-EXT-STS:task_state': i.taskState,
    'OS-EXT-STS:vm_state': i.vmState,
    'OS-EXT-STS:power_state': i.powerState,
    'os-extended-volumes:volumes_attached': [],
    security_groups: [{ name: 'default' }],
    'kumo:spawn_timings': i.timings,
    ...(admin ? adminView(i) : {}),
    ...faultView(i, admin),
  };
}

/** The detailed views of `list`, addresses read in one query. */
export async function views(
  deps: AppDeps,
  req: FastifyRequest,
  prefix: string,
  list: InstanceRecord[],
) {
  const addr = await addressesOf(deps, list);
  return list.map((i) => serverView(req, prefix, i, addr.get(i.id) ?? {}));
}
