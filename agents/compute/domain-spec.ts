/**
 * What a Kumo libvirt domain is made from (`DomainSpec`), Nova's instance name
 * (`instance-%08x`; tap names are host/ip/names.ts `portDevice('tap', portId)`), and the
 * validation every spec passes before anything is rendered.
 *
 * Invariant: `validateDomainSpec` returns only values that are safe to write into domain
 * XML and to hand to libvirt as names, paths and a kernel command line, or throws a
 * `DomainSpecError` naming the first bad field. Text holds only characters XML 1.0 can
 * carry (no U+FFFE or U+FFFF, which no escape can write): libvirt would refuse the domain
 * at define, after the instance's files were made. The bounds of vcpus, memory, names
 * and the command line are the contract's `DOMAIN_LIMITS`, so the API refuses at create
 * exactly what the domain cannot take.
 */
import { PermanentError } from '../../contracts/errors.ts';
import { HOSTNAME } from '../../contracts/schema.ts';
import { DOMAIN_LIMITS, domainTextProblem } from '../../contracts/servers.ts';
import { portDevice } from '../../host/ip/names.ts';
import { type VolumeDisk, validateVolumeDisks } from './volume-xml.ts';

export type VirtType = 'kvm' | 'qemu';
export type DiskFormat = 'qcow2' | 'raw';

export type VifType = 'ovs' | 'ethernet';

export interface DomainNic {
  /** Neutron-style port id: OVS `iface-id`, and `tap` + its first 11 characters. */
  portId: string;
  mac: string;
  /** `ovs` (default): libvirt plugs into `bridge`; `ethernet`: a bare tap the agent plugs. */
  vif?: VifType;
  /** Integration bridge the tap joins (an OVS bridge: `<virtualport type='openvswitch'>`). */
  bridge?: string;
  mtu?: number;
}

export interface DomainSpec {
  /** Instance uuid; also the domain uuid. */
  uuid: string;
  /** `instance-%08x` (see `instanceName`). */
  name: string;
  /** The user's name for the instance; goes only into the metadata. */
  displayName: string;
  flavor: { vcpus: number; ramMiB: number; diskGiB?: number };
  /** `kvm` in production; `qemu` (TCG) where KVM does not work (the host lab). */
  virtType: VirtType;
  /** Root disk (a qcow2 overlay on the image); may be left out for a kernel + ramdisk boot. */
  disk?: { path: string; format: DiskFormat };
  /** Kernel + ramdisk images (UEC/AMI style): direct kernel boot instead of `<boot dev='hd'/>`. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** The config drive image: a read-only cdrom. */
  configDrive?: string;
  nics: DomainNic[];
  /** Attached volumes: iSCSI network disks `vdb`… (volume-xml.ts), put back on every define. */
  volumes?: VolumeDisk[];
  /** File the serial console (ttyS0) is written to. */
  consoleLog: string;
  metadata: {
    flavorName: string;
    imageId: string;
    /** ISO 8601 timestamp, e.g. `2026-11-22T06:00:00Z`. */
    created: string;
    /** The Kumo host (`[DEFAULT] host`) whose compute agent owns the domain. */
    host?: string;
  };
}

/** A spec that cannot become a domain: permanent (retrying renders the same refusal). */
export class DomainSpecError extends PermanentError {
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`invalid domain spec: ${field} ${problem}`);
    this.name = 'DomainSpecError';
    this.field = field;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const INSTANCE_NAME = /^instance-[0-9a-f]{8}$/;
/** A Linux interface name: 1–15 characters, none of them `/`, `:` or whitespace. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const CREATED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$/;
const PATH_MAX = 4095;

/** Nova's instance_name_template `instance-%08x` for an integer instance id. */
export function instanceName(id: number): string {
  if (!Number.isSafeInteger(id) || id < 0 || id > 0xffffffff) {
    throw new DomainSpecError('id', `must be an integer in 0..2^32-1, got ${String(id)}`);
  }
  return `instance-${id.toString(16).padStart(8, '0')}`;
}

function str(field: string, v: unknown): string {
  if (typeof v !== 'string') throw new DomainSpecError(field, `must be a string, got ${typeof v}`);
  return v;
}

function uuid(field: string, v: unknown): string {
  const s = str(field, v);
  if (!UUID.test(s)) throw new DomainSpecError(field, `must be a uuid, got ${JSON.stringify(s)}`);
  return s.toLowerCase();
}

function text(field: string, v: unknown, max: number): string {
  const s = str(field, v);
  if (s.length === 0 || s.length > max) {
    throw new DomainSpecError(field, `must be 1..${max} characters long`);
  }
  const problem = domainTextProblem(s);
  if (problem) throw new DomainSpecError(field, problem);
  return s;
}

function matching(field: string, v: unknown, re: RegExp, what: string): string {
  const s = str(field, v);
  if (!re.test(s)) throw new DomainSpecError(field, `must be ${what}, got ${JSON.stringify(s)}`);
  return s;
}

function path(field: string, v: unknown): string {
  const s = text(field, v, PATH_MAX);
  if (!s.startsWith('/')) throw new DomainSpecError(field, `must be an absolute path, got ${s}`);
  if (s.split('/').some((seg) => seg === '..' || seg === '.')) {
    throw new DomainSpecError(field, `must not contain . or .. segments, got ${s}`);
  }
  if (s.endsWith('/')) throw new DomainSpecError(field, `must name a file, got ${s}`);
  return s;
}

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new DomainSpecError(field, `must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

function oneOf<T extends string>(field: string, v: unknown, values: readonly T[]): T {
  if (!values.includes(v as T)) {
    throw new DomainSpecError(field, `must be one of ${values.join(', ')}, got ${String(v)}`);
  }
  return v as T;
}

function mac(field: string, v: unknown): string {
  const s = matching(field, v, MAC, 'a MAC address like fa:16:3e:00:00:01').toLowerCase();
  if (Number.parseInt(s.slice(0, 2), 16) & 1) {
    throw new DomainSpecError(field, `must be a unicast MAC address, got ${s}`);
  }
  return s;
}

export type CheckedNic = {
  portId: string;
  mac: string;
  mtu: number | undefined;
} & ({ vif: 'ovs'; bridge: string } | { vif: 'ethernet' });

interface CheckedBoot {
  disk: { path: string; format: DiskFormat } | undefined;
  kernel: string | undefined;
  initrd: string | undefined;
  cmdline: string | undefined;
  configDrive: string | undefined;
}

export interface CheckedSpec extends CheckedBoot {
  uuid: string;
  name: string;
  displayName: string;
  vcpus: number;
  ramMiB: number;
  diskGiB: number | undefined;
  virtType: VirtType;
  nics: CheckedNic[];
  volumes: VolumeDisk[];
  consoleLog: string;
  flavorName: string;
  imageId: string;
  created: string;
  host: string | undefined;
}

const opt = <T>(v: unknown, check: (v: unknown) => T) => (v === undefined ? undefined : check(v));

function checkNic(n: DomainNic, i: number): CheckedNic {
  const f = `nics[${i}]`;
  const common = {
    portId: uuid(`${f}.portId`, n?.portId),
    mac: mac(`${f}.mac`, n?.mac),
    mtu: opt(n?.mtu, (v) => int(`${f}.mtu`, v, 68, 65535)),
  };
  const vif = oneOf(`${f}.vif`, n?.vif ?? 'ovs', ['ovs', 'ethernet'] as const);
  if (vif === 'ethernet') return { ...common, vif };
  return {
    ...common,
    vif,
    bridge: matching(`${f}.bridge`, n?.bridge, IFNAME, 'an interface name'),
  };
}

/** Every NIC checked; no port id, MAC or tap name twice. */
function checkNics(nics: unknown): CheckedNic[] {
  if (!Array.isArray(nics)) throw new DomainSpecError('nics', 'must be an array');
  const checked = (nics as DomainNic[]).map(checkNic);
  const seen = new Set<string>();
  checked.forEach((n, i) => {
    for (const key of [n.portId, n.mac, portDevice('tap', n.portId)]) {
      if (seen.has(key)) throw new DomainSpecError(`nics[${i}]`, `repeats ${key}`);
      seen.add(key);
    }
  });
  return checked;
}

/** The disk and direct-kernel-boot fields: something to boot, initrd/cmdline only with a kernel. */
function checkBoot(spec: DomainSpec): CheckedBoot {
  const disk =
    spec.disk === undefined
      ? undefined
      : {
          path: path('disk.path', spec.disk.path),
          format: oneOf('disk.format', spec.disk.format, ['qcow2', 'raw'] as const),
        };
  const kernel = opt(spec.kernel, (v) => path('kernel', v));
  const initrd = opt(spec.initrd, (v) => path('initrd', v));
  const cmdline = opt(spec.cmdline, (v) => text('cmdline', v, DOMAIN_LIMITS.cmdline));
  const configDrive = opt(spec.configDrive, (v) => path('configDrive', v));
  if (kernel === undefined && (initrd !== undefined || cmdline !== undefined)) {
    throw new DomainSpecError(initrd !== undefined ? 'initrd' : 'cmdline', 'needs kernel');
  }
  if (kernel === undefined && disk === undefined) {
    throw new DomainSpecError('disk', 'is required when there is no kernel to boot');
  }
  return { disk, kernel, initrd, cmdline, configDrive };
}

/** Validates a spec; throws `DomainSpecError` naming the first bad field. */
export function validateDomainSpec(spec: DomainSpec): CheckedSpec {
  if (typeof spec !== 'object' || spec === null) throw new DomainSpecError('spec', 'is missing');
  const flavor = spec.flavor ?? ({} as DomainSpec['flavor']);
  const meta = spec.metadata ?? ({} as DomainSpec['metadata']);
  const boot = checkBoot(spec);
  const nics = checkNics(spec.nics);
  const { vcpus, ramMb, text: textMax } = DOMAIN_LIMITS;
  return {
    ...boot,
    uuid: uuid('uuid', spec.uuid),
    name: matching('name', spec.name, INSTANCE_NAME, 'instance-%08x'),
    displayName: text('displayName', spec.displayName, textMax),
    vcpus: int('flavor.vcpus', flavor.vcpus, vcpus.min, vcpus.max),
    ramMiB: int('flavor.ramMiB', flavor.ramMiB, ramMb.min, ramMb.max),
    diskGiB: opt(flavor.diskGiB, (v) => int('flavor.diskGiB', v, 0, 2 ** 31 - 1)),
    virtType: oneOf('virtType', spec.virtType, ['kvm', 'qemu'] as const),
    nics,
    volumes: validateVolumeDisks(spec.volumes ?? []),
    consoleLog: path('consoleLog', spec.consoleLog),
    flavorName: text('metadata.flavorName', meta.flavorName, textMax),
    imageId: uuid('metadata.imageId', meta.imageId),
    created: matching('metadata.created', meta.created, CREATED, 'an ISO 8601 timestamp'),
    host: opt(meta.host, (v) => matching('metadata.host', v, HOSTNAME, 'a host name')),
  };
}
