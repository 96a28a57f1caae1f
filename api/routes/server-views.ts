/**
 * Nova v2.1-2.16 server representations: the detailed view of GET /servers/{id} and
 * /servers/detail, and the short view that PUT /servers/{id} and the rebuild action
 * answer (nova's views/servers.py show() with the show_* flags off, as before 2.75).
 *
 * Invariants: a view has exactly the keys Nova's has at the request's microversion
 * (tempest's v2_1, v2_3, v2_9 and v2_16 response schemas): 2.3 adds the admin's
 * OS-EXT-SRV-ATTR reservation/launch/hostname/kernel/ramdisk/root device/user data, 2.9
 * `locked`, 2.16 the admin's `host_status`. Kumo's own diagnostics never appear in them
 * unless asked for: `X-Kumo-Diagnostics: spawn-timings` adds `kumo:spawn_timings` (the
 * compute agent's spawn phases in ms, or null) to the detailed view. A view shows only
 * the instance's own ports (port_order, NIC order), the NICs its spec has.
 * OS-EXT-AZ:availability_zone is its host's compute agent's zone (`nova` by default), the
 * zone the metadata service's placement/availability-zone answers.
 * os-extended-volumes:volumes_attached lists the volumes with an attachment to it.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { serverStatus } from '../../contracts/servers.ts';
import { computeZones } from '../db/agents.ts';
import { instanceHostname } from '../db/instance-record.ts';
import { deviceAddresses } from '../db/port-devices.ts';
import { type InstanceRecord, inPortOrder } from '../db/servers.ts';
import { volumesAttached } from '../db/volume-info.ts';
import type { AppDeps } from '../deps.ts';
import { atLeast } from '../microversion.ts';
import { base, links } from './nova.ts';
import { hostStatuses } from './server-host-status.ts';

/** The request header (and value) that adds `kumo:spawn_timings` to detailed views. */
export const DIAGNOSTICS_HEADER = 'x-kumo-diagnostics';
export const SPAWN_TIMINGS = 'spawn-timings';

const wantsTimings = (req: FastifyRequest) =>
  String(req.headers[DIAGNOSTICS_HEADER] ?? '')
    .split(',')
    .some((v) => v.trim().toLowerCase() === SPAWN_TIMINGS);

const bookmark = (req: FastifyRequest, kind: string, id: string) => ({
  id,
  links: [{ rel: 'bookmark', href: `${base(req, '')}/${kind}/${encodeURIComponent(id)}` }],
});
/** Nova's OS-SRV-USG timestamps: `2026-11-22T10:00:00.000000`. */
const usage = (t: string | null) => (t === null ? null : `${t.slice(0, 19)}.000000`);

export interface Address {
  version: 4 | 6;
  addr: string;
  'OS-EXT-IPS:type': 'fixed';
  'OS-EXT-IPS-MAC:mac_addr': string;
}
export type Addresses = Record<string, Address[]>;

/** addresses per instance: {network name: [fixed IPs with the port's MAC]}, NIC order;
 * only the instance's own ports (port_order), as its spec has them. Keyed by names users
 * chose, so the objects have no prototype (a network named `__proto__` is a label). */
export async function addressesOf(deps: AppDeps, list: InstanceRecord[]) {
  const out = new Map<string, Addresses>(list.map((i) => [i.id, Object.create(null) as Addresses]));
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

/** Addresses without Nova's extension keys (the short view, /ips): version and addr. */
export const plainAddresses = (addr: Addresses) =>
  Object.fromEntries(
    Object.entries(addr).map(([label, list]) => [
      label,
      list.map(({ version, addr: a }) => ({ version, addr: a })),
    ]),
  );

/** Nova 2.3's extra OS-EXT-SRV-ATTR attributes (admin only). */
function attrs23(i: InstanceRecord) {
  const launchedFromDisk = i.launchedAt !== null && i.imageMeta.image.disk_format !== 'aki';
  return {
    'OS-EXT-SRV-ATTR:reservation_id': i.reservationId || null,
    'OS-EXT-SRV-ATTR:launch_index': i.launchIndex,
    'OS-EXT-SRV-ATTR:hostname': instanceHostname(i),
    'OS-EXT-SRV-ATTR:kernel_id': i.imageMeta.kernel?.id ?? '',
    'OS-EXT-SRV-ATTR:ramdisk_id': i.imageMeta.ramdisk?.id ?? '',
    'OS-EXT-SRV-ATTR:root_device_name': launchedFromDisk ? '/dev/vda' : null,
    'OS-EXT-SRV-ATTR:user_data': i.userData,
  };
}

/** What only an admin sees of a server (OS-EXT-SRV-ATTR, more from 2.3). */
function adminView(req: FastifyRequest, i: InstanceRecord) {
  const host = i.host || null;
  return {
    'OS-EXT-SRV-ATTR:host': host,
    'OS-EXT-SRV-ATTR:instance_name': `instance-${i.seq.toString(16).padStart(8, '0')}`,
    'OS-EXT-SRV-ATTR:hypervisor_hostname': host,
    ...(atLeast(req, 3) ? attrs23(i) : {}),
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

/** Nova shows `progress` only in these statuses. */
const PROGRESS_STATUSES = new Set(['ACTIVE', 'BUILD', 'REBUILD', 'RESIZE', 'VERIFY_RESIZE']);

/** The keys both views have (nova's show() with every show_* flag off). */
function commonView(req: FastifyRequest, prefix: string, i: InstanceRecord) {
  const status = serverStatus(i.vmState, i.taskState);
  return {
    id: i.id,
    name: i.name,
    status,
    tenant_id: i.projectId,
    user_id: i.userId,
    metadata: i.metadata,
    hostId: hostIdOf(i),
    image: bookmark(req, 'images', i.imageId),
    flavor: bookmark(req, 'flavors', i.flavor.id),
    created: i.createdAt,
    updated: i.updatedAt,
    accessIPv4: i.accessIPv4,
    accessIPv6: i.accessIPv6,
    links: links(req, prefix, 'servers', i.id),
    'OS-DCF:diskConfig': 'MANUAL',
    ...faultView(i, req.role === 'admin'),
    ...(PROGRESS_STATUSES.has(status) ? { progress: 0 } : {}),
    ...(atLeast(req, 9) ? { locked: i.lockedBy !== null } : {}),
  };
}

function detailView(
  req: FastifyRequest,
  prefix: string,
  i: InstanceRecord,
  addr: Addresses,
  host: { status: string | undefined; zone: string; volumes: string[] },
) {
  const admin = req.role === 'admin';
  const hostStatus = host.status;
  return {
    ...commonView(req, prefix, i),
    addresses: addr,
    'OS-EXT-AZ:availability_zone': host.zone,
    config_drive: i.configDrive ? 'True' : '',
    key_name: i.keyName,
    'OS-SRV-USG:launched_at': usage(i.launchedAt),
    'OS-SRV-USG:terminated_at': usage(i.deletedAt),
    security_groups: i.securityGroups.map((name) => ({ name })),
    ...(admin ? adminView(req, i) : {}),
    'OS-EXT-STS:task_state': i.taskState,
    'OS-EXT-STS:vm_state': i.vmState,
    'OS-EXT-STS:power_state': i.powerState,
    'os-extended-volumes:volumes_attached': host.volumes.map((id) =>
      // 2.3: each names delete_on_termination (false: an attached volume outlives the server).
      atLeast(req, 3) ? { id, delete_on_termination: false } : { id },
    ),
    ...(hostStatus === undefined ? {} : { host_status: hostStatus }),
    ...(wantsTimings(req) ? { 'kumo:spawn_timings': i.timings } : {}),
  };
}

/** The detailed views of `list`, addresses (and 2.16 host statuses) read in one query. */
export async function views(
  deps: AppDeps,
  req: FastifyRequest,
  prefix: string,
  list: InstanceRecord[],
) {
  const addr = await addressesOf(deps, list);
  const statuses = req.role === 'admin' && atLeast(req, 16) ? await hostStatuses(deps) : undefined;
  const zones = await computeZones(deps.db);
  const volumes = await volumesAttached(
    deps.db,
    list.map((i) => i.id),
  );
  return list.map((i) =>
    detailView(req, prefix, i, addr.get(i.id) ?? {}, {
      status: statuses?.(i.host),
      zone: zones(i.host),
      volumes: volumes.get(i.id) ?? [],
    }),
  );
}

/** The short view of one server, as PUT /servers/{id} answers it; the rebuild action
 * answers it too, with `adminPass` added. */
export async function shortView(
  deps: AppDeps,
  req: FastifyRequest,
  prefix: string,
  inst: InstanceRecord,
) {
  const addr = (await addressesOf(deps, [inst])).get(inst.id) ?? {};
  return { ...commonView(req, prefix, inst), addresses: plainAddresses(addr) };
}
