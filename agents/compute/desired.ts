/**
 * What one instance's domain must be on this host, from the API's InstanceSpec: its files
 * under `<instances_path>/<uuid>/`, its root disk, its kernel and ramdisk, its config
 * drive (asked for by the server, or every instance's under `force_config_drive`), its
 * NICs and its rendered domain XML. Pure.
 *
 * Invariants: the domain XML is rendered (and so validated and escaped) here, before any
 * host object exists, so a spec the renderer refuses fails its spawn without leaving
 * anything behind; tap names come only from host/ip/names `portDevice`; every path is
 * built from the validated uuid and fixed file names; an image that cannot be booted (a
 * ramdisk alone, a kernel without a kernel image) is an `InstanceSpecError` naming why.
 */
import { createHash } from 'node:crypto';
import { PermanentError } from '../../contracts/errors.ts';
import type { InstanceImage, InstanceSpec } from '../../contracts/instances.ts';
import { portDevice } from '../../host/ip/names.ts';
import { type DomainSpec, instanceName, renderDomainXml, type VirtType } from './domain.ts';
import { attachDisks, type VolumeDisk } from './volume-xml.ts';

export interface ComputeSettings {
  /** `[DEFAULT] host`: written into every domain's metadata; only such domains are ours. */
  host: string;
  instancesPath: string;
  /** `<instances_path>/_base`: the image cache. */
  baseDir: string;
  virtType: VirtType;
  intBridge: string;
  /** `[ovs] vswitchd_netns`: ovs-vswitchd runs there (the lab) and the agent plugs taps. */
  vswitchdNetns?: string;
  vifPluggingTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** `<state_path>/compute`: what the agent keeps across restarts (the recorded boot id). */
  stateDir: string;
  /** `[compute] force_config_drive`: every instance gets a config drive. */
  forceConfigDrive: boolean;
  /** `[compute] iscsi_initiator_name`; absent: `iqn.2010-10.org.kumo:<host>`. */
  iscsiInitiator?: string;
}

/** This host's iSCSI initiator name, which volume targets admit while attached here. */
export const initiatorOf = (s: Pick<ComputeSettings, 'host' | 'iscsiInitiator'>) =>
  s.iscsiInitiator ?? `iqn.2010-10.org.kumo:${s.host}`;

/** A spec that cannot become a domain; its spawn fails with this message (not retried). */
export class InstanceSpecError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InstanceSpecError';
  }
}

export type VifMode = 'ovs' | 'ethernet';
export const vifMode = (s: ComputeSettings): VifMode => (s.vswitchdNetns ? 'ethernet' : 'ovs');

export interface InstancePaths {
  dir: string;
  disk: string;
  kernel: string;
  ramdisk: string;
  /** `<dir>/disk.config`: the config drive image (Nova's name). */
  configDrive: string;
  console: string;
  /** `<dir>/host`: the owner marker, naming the host whose agent made the directory. */
  owner: string;
  /** `<dir>/images`: ids of the cached images the instance's files are made from. */
  images: string;
  /**
   * `<instances_path>/.<uuid>.part-<16 hex of sha256(host)>`: where this host builds the
   * directory before renaming it into place (the host name itself may be too long).
   */
  staging: string;
}

/** Whose an instance directory is (its owner marker's host), for a fault message. */
export const ownerText = (owner: string | null) =>
  owner === null ? 'no host (it has no owner marker)' : `host ${owner}`;

/** 16 hex digits naming a host in file names (a host name may be 253 characters). */
export const hostTag = (host: string) =>
  createHash('sha256').update(host).digest('hex').slice(0, 16);

export function pathsOf(s: ComputeSettings, id: string): InstancePaths {
  const dir = `${s.instancesPath}/${id}`;
  return {
    dir,
    disk: `${dir}/disk`,
    kernel: `${dir}/kernel`,
    ramdisk: `${dir}/ramdisk`,
    configDrive: `${dir}/disk.config`,
    console: `${dir}/console.log`,
    owner: `${dir}/host`,
    images: `${dir}/images`,
    staging: `${s.instancesPath}/.${id}.part-${hostTag(s.host)}`,
  };
}

/** The root disk: a qcow2 overlay on the cached image, a blank qcow2, or none. */
export type RootDisk =
  | { kind: 'overlay'; image: InstanceImage; baseFormat: 'qcow2' | 'raw'; sizeBytes?: number }
  | { kind: 'blank'; sizeBytes: number }
  | { kind: 'none' };

export interface DesiredNic {
  portId: string;
  mac: string;
  tap: string;
  mtu: number;
}

export interface DesiredInstance {
  id: string;
  /** The image the instance is (re)built from. */
  imageId: string;
  name: string;
  paths: InstancePaths;
  rootDisk: RootDisk;
  kernel: InstanceImage | null;
  ramdisk: InstanceImage | null;
  nics: DesiredNic[];
  /** The instance has a config drive: asked for, or forced by the host's config. */
  configDrive: boolean;
  /** The volumes to attach (valid `attach` entries), on the domain whenever it is defined. */
  volumes: VolumeDisk[];
  xml: string;
}

const GIB = 1024 ** 3;

/** Nova's default for direct kernel boot without `os_command_line`. */
const DEFAULT_CMDLINE = 'console=tty0 console=ttyS0';

function bootImages(spec: InstanceSpec): { rootDisk: RootDisk; kernel: InstanceImage | null } {
  const { image, flavor } = spec;
  const sized = flavor.disk > 0 ? { sizeBytes: flavor.disk * GIB } : {};
  const blank: RootDisk =
    flavor.disk > 0 ? { kind: 'blank', sizeBytes: flavor.disk * GIB } : { kind: 'none' };
  switch (image.disk_format) {
    case 'qcow2':
      return { rootDisk: { kind: 'overlay', image, baseFormat: 'qcow2', ...sized }, kernel: null };
    case 'raw':
    case 'ami':
      return { rootDisk: { kind: 'overlay', image, baseFormat: 'raw', ...sized }, kernel: null };
    case 'aki':
      return { rootDisk: blank, kernel: image };
    case 'ari':
      throw new InstanceSpecError(`image ${image.id} is a ramdisk (ari): it cannot be booted`);
  }
}

/** The NICs of the spec's ports; tap names from host/ip/names (a bad port id is refused). */
export function nicsOf(spec: InstanceSpec): DesiredNic[] {
  return spec.ports.map((p) => {
    let tap: string;
    try {
      tap = portDevice('tap', p.id);
    } catch (e) {
      throw new InstanceSpecError((e as Error).message, { cause: e });
    }
    return { portId: p.id, mac: p.mac_address.toLowerCase(), tap, mtu: p.mtu };
  });
}

/** The direct kernel boot fields of the domain: kernel, ramdisk and command line. */
function kernelBoot(spec: InstanceSpec, paths: InstancePaths, hasDisk: boolean) {
  return {
    kernel: paths.kernel,
    ...(spec.ramdisk ? { initrd: paths.ramdisk } : {}),
    cmdline: spec.cmdline ?? `${hasDisk ? 'root=/dev/vda ' : ''}${DEFAULT_CMDLINE}`,
  };
}

function domainSpecOf(
  spec: InstanceSpec,
  s: ComputeSettings,
  d: Omit<DesiredInstance, 'xml'>,
): DomainSpec {
  const vif = vifMode(s);
  const hasDisk = d.rootDisk.kind !== 'none';
  return {
    uuid: spec.id,
    name: d.name,
    displayName: spec.display_name,
    flavor: { vcpus: spec.flavor.vcpus, ramMiB: spec.flavor.ram, diskGiB: spec.flavor.disk },
    virtType: s.virtType,
    ...(hasDisk ? { disk: { path: d.paths.disk, format: 'qcow2' as const } } : {}),
    ...(d.kernel ? kernelBoot(spec, d.paths, hasDisk) : {}),
    ...(d.configDrive ? { configDrive: d.paths.configDrive } : {}),
    nics: d.nics.map((n) => ({
      portId: n.portId,
      mac: n.mac,
      mtu: n.mtu,
      vif,
      ...(vif === 'ovs' ? { bridge: s.intBridge } : {}),
    })),
    volumes: d.volumes,
    consoleLog: d.paths.console,
    metadata: {
      flavorName: spec.flavor.name,
      imageId: spec.image.id,
      created: spec.created_at,
      host: s.host,
    },
  };
}

export function desiredInstance(spec: InstanceSpec, s: ComputeSettings): DesiredInstance {
  const boot = bootImages(spec);
  const kernel = spec.kernel ?? boot.kernel;
  if (spec.ramdisk && !kernel)
    throw new InstanceSpecError(`image ${spec.image.id} has a ramdisk but no kernel`);
  if (boot.rootDisk.kind === 'overlay' && spec.image.disk_format === 'ami' && !kernel)
    throw new InstanceSpecError(`image ${spec.image.id} is an ami without a kernel_id`);
  const d = {
    id: spec.id,
    imageId: spec.image.id,
    name: instanceName(spec.seq),
    paths: pathsOf(s, spec.id),
    rootDisk: boot.rootDisk,
    kernel,
    ramdisk: spec.ramdisk,
    nics: nicsOf(spec),
    configDrive: spec.config_drive || s.forceConfigDrive,
    volumes: attachedVolumes(spec, s),
  };
  return { ...d, xml: renderDomainXml(domainSpecOf(spec, s, d)) };
}

/**
 * The disks of the spec's `attach` entries; one that cannot be a disk is left out here
 * (the volume plan reports its attachment ERROR), so it never fails the instance.
 */
export const attachedVolumes = (spec: InstanceSpec, s: ComputeSettings): VolumeDisk[] =>
  attachDisks(spec.volumes ?? [], initiatorOf(s)).disks;

/** The images a boot needs in the cache. */
export function imagesOf(d: DesiredInstance): InstanceImage[] {
  const all = [d.rootDisk.kind === 'overlay' ? d.rootDisk.image : null, d.kernel, d.ramdisk];
  return all.filter((i): i is InstanceImage => i !== null);
}
