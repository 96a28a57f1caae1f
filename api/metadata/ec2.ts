/**
 * The EC2-style metadata tree, as Nova's InstanceMetadata.get_ec2_metadata builds it, and
 * Nova's ec2_md_print listing of a node: a dict lists its keys sorted, a sub-dict as
 * `key/` (or its `_name`), a list one item per line.
 *
 * Invariant: keys appear only for the versions Nova shows them in; public-keys appears
 * only with a key, kernel-id and ramdisk-id only when the image has them, user-data only
 * when the instance has some.
 */
import { instanceHostname } from '../db/instance-record.ts';
import type { InstanceData } from './instance-data.ts';

export const EC2_VERSIONS = [
  '1.0',
  '2007-01-19',
  '2007-03-01',
  '2007-08-29',
  '2007-10-10',
  '2007-12-15',
  '2008-02-01',
  '2008-09-01',
  '2009-04-04',
] as const;

/** A metadata node: text (or raw bytes), a list, or a dict (`_name` renames it in a listing). */
export type Node = string | number | Buffer | string[] | { [key: string]: Node };
export type Tree = { [key: string]: Node };

/** Nova's [api] dhcp_domain default. */
const DHCP_DOMAIN = 'novalocal';

/** Nova's instance hostname with the DHCP domain. */
export const hostnameOf = (d: InstanceData) => `${instanceHostname(d.record)}.${DHCP_DOMAIN}`;

/** Nova's ec2 id: a type prefix and 8 hex digits. */
const ec2Id = (prefix: string, n: number) => `${prefix}-${n.toString(16).padStart(8, '0')}`;
/** An image's ec2 id: Kumo keeps no integer image ids, so the uuid's first 8 hex digits. */
const imageEc2Id = (prefix: string, uuid: string) =>
  ec2Id(prefix, Number.parseInt(uuid.slice(0, 8), 16));

/** The instance's first fixed IPv4 and first floating IP, as Nova's ip_info. */
export function ipInfo(d: InstanceData) {
  const fixed = d.ports.flatMap((p) =>
    p.fixedIps.filter((ip) => ip.subnet.ipVersion === 4).map((ip) => ip.ipAddress),
  );
  const floating = d.ports.flatMap((p) => p.floatingIps);
  return { fixed: fixed[0] ?? '', floating: floating[0] ?? '' };
}

const atLeast = (version: string, required: string) =>
  EC2_VERSIONS.indexOf(version as (typeof EC2_VERSIONS)[number]) >=
  EC2_VERSIONS.indexOf(required as (typeof EC2_VERSIONS)[number]);

function baseMetaData(d: InstanceData): Tree {
  const r = d.record;
  const md: Tree = {
    'ami-id': imageEc2Id('ami', r.imageMeta.image.id),
    'ami-launch-index': r.launchIndex,
    'ami-manifest-path': 'FIXME',
    'instance-id': ec2Id('i', r.seq),
    hostname: hostnameOf(d),
    'local-ipv4': ipInfo(d).fixed,
    'reservation-id': r.reservationId,
    'security-groups': [...r.securityGroups],
  };
  if (d.key) md['public-keys'] = { '0': { _name: `0=${d.key.name}`, 'openssh-key': d.key.data } };
  return md;
}

/** The `meta-data` dict for one EC2 version (not `latest`). */
export function ec2MetaData(d: InstanceData, version: string): Tree {
  const r = d.record;
  const md = baseMetaData(d);
  if (atLeast(version, '2007-01-19')) {
    md['local-hostname'] = hostnameOf(d);
    md['public-hostname'] = hostnameOf(d);
    md['public-ipv4'] = ipInfo(d).floating;
  }
  if (atLeast(version, '2007-08-29')) md['instance-type'] = r.flavor.name;
  if (atLeast(version, '2007-12-15')) {
    md['block-device-mapping'] = { ami: 'vda', root: '/dev/vda' };
    if (r.imageMeta.kernel) md['kernel-id'] = imageEc2Id('aki', r.imageMeta.kernel.id);
    if (r.imageMeta.ramdisk) md['ramdisk-id'] = imageEc2Id('ari', r.imageMeta.ramdisk.id);
  }
  if (atLeast(version, '2008-02-01')) md.placement = { 'availability-zone': d.availabilityZone };
  if (atLeast(version, '2008-09-01')) md['instance-action'] = 'none';
  return md;
}

/** One EC2 version's tree (`latest` is the newest), or undefined for an unknown version. */
export function ec2Tree(d: InstanceData, version: string): Tree | undefined {
  const v = version === 'latest' ? EC2_VERSIONS[EC2_VERSIONS.length - 1] : version;
  if (!(EC2_VERSIONS as readonly string[]).includes(v as string)) return undefined;
  const tree: Tree = { 'meta-data': ec2MetaData(d, v as string) };
  if (d.userData !== null) tree['user-data'] = d.userData;
  return tree;
}

/** Nova's find_path_in_tree: the node at `tokens`, undefined when there is none (a list has
 * no children here, where Nova would fail with a 500). */
export function findPath(node: Node, tokens: readonly string[]): Node | undefined {
  let at: Node = node;
  for (const t of tokens) {
    if (typeof at !== 'object' || Buffer.isBuffer(at) || Array.isArray(at)) return undefined;
    if (!Object.hasOwn(at, t) || t === '_name') return undefined;
    at = at[t] as Node;
  }
  return at;
}

/** Nova's ec2_md_print. */
export function ec2Print(node: Node): string | Buffer {
  if (Buffer.isBuffer(node)) return node;
  if (Array.isArray(node)) return node.join('\n');
  if (typeof node !== 'object') return String(node);
  return Object.keys(node)
    .filter((k) => k !== '_name')
    .sort()
    .map((k) => {
      const v = node[k] as Node;
      if (typeof v !== 'object' || Buffer.isBuffer(v) || Array.isArray(v)) return k;
      return typeof v._name === 'string' ? v._name : `${k}/`;
    })
    .join('\n');
}
