/**
 * The OpenStack metadata tree, as Nova's InstanceMetadata serves it: the version list
 * (future versions hidden), each version's listing, meta_data.json (Nova's keys for the
 * version asked, in Nova's order), user_data, password, vendor_data.json,
 * network_data.json and vendor_data2.json.
 *
 * Invariant: an item exists only from the version Nova added it in; `latest` is the
 * newest version; the random seed comes from the caller (one per request, as Nova);
 * network_data.json and user_data answer in every version, as Nova's handlers do, though
 * only newer listings name the first.
 */
import { hostnameOf } from './ec2.ts';
import type { InstanceData } from './instance-data.ts';
import { networkData } from './network-data.ts';
import { pythonJson } from './python-json.ts';

export const OPENSTACK_VERSIONS = [
  '2012-08-10',
  '2013-04-04',
  '2013-10-17',
  '2015-10-15',
  '2016-06-30',
  '2016-10-06',
  '2017-02-22',
  '2018-08-27',
  '2020-10-14',
  '2025-04-04',
] as const;
const [, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, , , VICTORIA] = OPENSTACK_VERSIONS;

/** A served item: its body and content type. */
export interface Item {
  body: string | Buffer;
  type: 'text/plain' | 'application/json';
}

const atLeast = (version: string, required: string) =>
  OPENSTACK_VERSIONS.indexOf(version as never) >= OPENSTACK_VERSIONS.indexOf(required as never);

/** Nova's /openstack listing: the versions up to `today` (YYYY-MM-DD), then `latest`. */
export const openstackVersions = (today: string) => [
  ...OPENSTACK_VERSIONS.filter((v) => v <= today),
  'latest',
];

/** The version a path names, `latest` resolved; undefined when unknown. */
export function resolveVersion(version: string): string | undefined {
  if (version === 'latest') return OPENSTACK_VERSIONS[OPENSTACK_VERSIONS.length - 1];
  return (OPENSTACK_VERSIONS as readonly string[]).includes(version) ? version : undefined;
}

/** Nova's _handle_version: what one version holds. */
export function versionListing(d: InstanceData, version: string): string[] {
  const out = ['meta_data.json'];
  if (d.userData !== null) out.push('user_data');
  if (atLeast(version, GRIZZLY)) out.push('password');
  if (atLeast(version, HAVANA)) out.push('vendor_data.json');
  if (atLeast(version, LIBERTY)) out.push('network_data.json');
  if (atLeast(version, NEWTON_TWO)) out.push('vendor_data2.json');
  return out;
}

/** Nova's _metadata_as_json, for one resolved version. */
export function metaDataJson(d: InstanceData, version: string, seed: Buffer) {
  const r = d.record;
  const md: Record<string, unknown> = { uuid: r.id };
  if (Object.keys(r.metadata).length > 0) md.meta = r.metadata;
  if (d.key) {
    md.public_keys = { [d.key.name]: d.key.data };
    md.keys = [{ name: d.key.name, type: d.key.type, data: d.key.data }];
  }
  md.hostname = hostnameOf(d);
  md.name = r.name;
  md.launch_index = r.launchIndex;
  md.availability_zone = d.availabilityZone;
  if (atLeast(version, GRIZZLY)) md.random_seed = seed.toString('base64');
  if (atLeast(version, LIBERTY)) md.project_id = r.projectId;
  if (atLeast(version, NEWTON_ONE)) md.devices = [];
  if (atLeast(version, VICTORIA)) md.dedicated_cpus = [];
  return md;
}

const json = (value: unknown): Item => ({ body: pythonJson(value), type: 'application/json' });

/** One file of a resolved version; undefined when that version has no such file. */
export function openstackFile(
  d: InstanceData,
  version: string,
  name: string,
  seed: () => Buffer,
): Item | undefined {
  switch (name) {
    case 'meta_data.json':
      return json(metaDataJson(d, version, seed()));
    case 'user_data':
      return d.userData === null ? undefined : { body: d.userData, type: 'text/plain' };
    case 'password':
      return atLeast(version, GRIZZLY) ? { body: '', type: 'text/plain' } : undefined;
    case 'vendor_data.json':
      return atLeast(version, HAVANA) ? json({}) : undefined;
    case 'network_data.json':
      return json(d.ports.length === 0 ? {} : networkData(d.ports));
    case 'vendor_data2.json':
      return atLeast(version, NEWTON_TWO) ? json({}) : undefined;
    default:
      return undefined;
  }
}
