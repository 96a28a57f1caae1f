/**
 * The one content builder of instance metadata, used by the listener (lookup) and the
 * config drive (configDriveFiles): Nova's InstanceMetadata.lookup and
 * metadata_for_config_drive over the EC2 and OpenStack trees.
 *
 * Invariant: a path is normalised as Nova's posixpath.normpath does (so `..` never leaves
 * the tree); anything that does not name an item is undefined (the listener's 404).
 */
import { posix } from 'node:path';
import { EC2_VERSIONS, ec2MetaData, ec2Print, ec2Tree, findPath } from './ec2.ts';
import type { InstanceData } from './instance-data.ts';
import {
  type Item,
  OPENSTACK_VERSIONS,
  openstackFile,
  openstackVersions,
  resolveVersion,
  versionListing,
} from './openstack.ts';
import { pythonJson } from './python-json.ts';

export type { Item } from './openstack.ts';

export interface LookupOptions {
  /** Today as YYYY-MM-DD (future OpenStack versions are hidden from the list). */
  today: string;
  /** A new random seed for meta_data.json. */
  seed: () => Buffer;
}

const text = (body: string | Buffer): Item => ({ body, type: 'text/plain' });

function openstackItem(d: InstanceData, tokens: string[], opts: LookupOptions) {
  const [version, ...rest] = tokens;
  const resolved = resolveVersion(version as string);
  if (resolved === undefined) return undefined;
  if (rest.length === 0) return text(versionListing(d, resolved).join('\n'));
  return openstackFile(d, resolved, rest.join('/'), opts.seed);
}

/** The item at `path` (Nova's lookup); undefined when there is none. */
export function lookup(d: InstanceData, path: string, opts: LookupOptions): Item | undefined {
  const tokens = posix.normalize(`/${path}`).split('/').slice(1);
  if (tokens[tokens.length - 1] === '') tokens.pop();
  if (tokens[0] !== 'ec2' && tokens[0] !== 'openstack') tokens.unshift('ec2');
  const [root, ...rest] = tokens;
  if (rest.length === 0)
    return text(
      (root === 'openstack' ? openstackVersions(opts.today) : [...EC2_VERSIONS, 'latest']).join(
        '\n',
      ),
    );
  if (root === 'openstack') return openstackItem(d, rest, opts);
  const [version, ...inTree] = rest;
  const tree = ec2Tree(d, version as string);
  const node = tree && findPath(tree, inTree);
  return node === undefined ? undefined : text(ec2Print(node));
}

export interface DriveFile {
  path: string;
  content: Buffer;
}

/**
 * The config drive's ec2 files of one version: user-data and meta-data.json. Nova's
 * metadata_for_config_drive means to drop public-keys' `_name` but looks for it in the
 * wrong dict, so its drives keep `"_name": "0=<key>"`; Kumo's keep it too.
 */
function ec2Files(d: InstanceData, version: string): DriveFile[] {
  const v = version === 'latest' ? (EC2_VERSIONS[EC2_VERSIONS.length - 1] as string) : version;
  const md = ec2MetaData(d, v);
  const files: DriveFile[] = [];
  if (d.userData !== null) files.push({ path: `ec2/${version}/user-data`, content: d.userData });
  files.push({ path: `ec2/${version}/meta-data.json`, content: Buffer.from(pythonJson(md)) });
  return files;
}

/** The config drive's openstack files of one version, as Nova's metadata_for_config_drive. */
function openstackFiles(d: InstanceData, version: string, seed: () => Buffer): DriveFile[] {
  const resolved = resolveVersion(version) as string;
  const names = versionListing(d, resolved).filter((n) => n !== 'password');
  return names.map((name) => {
    const item = openstackFile(d, resolved, name, seed) as Item;
    return { path: `openstack/${version}/${name}`, content: Buffer.from(item.body) };
  });
}

/**
 * Every file of the config drive: ec2/2009-04-04 and ec2/latest (Nova skips the older
 * EC2 versions by default), then openstack/<each version> and openstack/latest.
 */
export function configDriveFiles(d: InstanceData, seed: () => Buffer): DriveFile[] {
  return [
    ...['2009-04-04', 'latest'].flatMap((v) => ec2Files(d, v)),
    ...[...OPENSTACK_VERSIONS, 'latest'].flatMap((v) => openstackFiles(d, v, seed)),
  ];
}
