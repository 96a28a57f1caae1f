/**
 * What Nova's metadata service answers, for the metadata tests and bench: the version list
 * of `/` and of `/openstack`, the 2009-04-04 meta-data listing (sorted, directories with a trailing slash, as
 * Nova's ec2_md_print prints them), the EC2 instance id (`i-` + the 8 hex digits of the
 * instance's integer id, which the domain name `instance-<8 hex>` carries too), and a
 * fresh OpenSSH public key to import.
 *
 * Invariant: pure data and functions, computed from the API's own views, never from the
 * service under test.
 */
import { generateKeyPairSync } from 'node:crypto';

/** `/`: Nova's EC2 versions, then `latest`. */
export const VERSIONS = [
  '1.0',
  '2007-01-19',
  '2007-03-01',
  '2007-08-29',
  '2007-10-10',
  '2007-12-15',
  '2008-02-01',
  '2008-09-01',
  '2009-04-04',
  'latest',
] as const;

const ALWAYS = [
  'ami-id',
  'ami-launch-index',
  'ami-manifest-path',
  'block-device-mapping/',
  'hostname',
  'instance-action',
  'instance-id',
  'instance-type',
  'kernel-id',
  'local-hostname',
  'local-ipv4',
  'placement/',
  'public-hostname',
  'public-ipv4',
  'ramdisk-id',
  'reservation-id',
  'security-groups',
] as const;

/** `/openstack`'s versions (then `latest`), as Nova lists them today. */
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

/** `/2009-04-04/meta-data/`; `hasKernel` (default true): booted from a kernel + ramdisk image. */
export function metaDataListing(opts: { hasKey: boolean; hasKernel?: boolean }): string[] {
  const noKernel = opts.hasKernel === false ? ['kernel-id', 'ramdisk-id'] : [];
  const items: string[] = ALWAYS.filter((i) => !noKernel.includes(i));
  if (opts.hasKey) items.push('public-keys/');
  return items.sort((a, b) => (a.replace(/\/$/, '') < b.replace(/\/$/, '') ? -1 : 1));
}

/** The EC2 id of an instance from its libvirt name (`instance-0000000a` → `i-0000000a`). */
export function ec2InstanceId(instanceName: string): string {
  const hex = /^instance-([0-9a-f]{8})$/.exec(instanceName)?.[1];
  if (hex === undefined) throw new Error(`not an instance name: ${instanceName}`);
  return `i-${hex}`;
}

/** A new ed25519 public key in OpenSSH's one-line form. */
export function sshPublicKey(comment: string): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const withLength = (b: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  const blob = Buffer.concat([withLength(Buffer.from('ssh-ed25519')), withLength(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}
