/**
 * The libvirt domain XML of one instance, in the shape nova-compute's libvirt driver writes
 * (so operators find what they know with `virsh dumpxml`): `instance-%08x` names, the
 * instance uuid as the domain uuid, a `<metadata>` element in our own namespace (Nova's is
 * `<nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">`), virtio disk
 * `vda`, one virtio NIC per port on a `tap` + 11 characters of the port id, and a
 * file-backed serial console. A NIC is either Nova's OVS bridge interface (libvirt plugs
 * the tap into the bridge with the port id as `iface-id`) or a plain `ethernet` tap that
 * libvirt creates and the agent plugs itself (when ovs-vswitchd runs in another netns).
 * The metadata names the host that owns the domain, so an agent only ever manages its own.
 *
 * Pure: `renderDomainXml(spec)` validates every field first (throwing a
 * `DomainSpecError` that names the field) and escapes every value it writes.
 */
import { HOSTNAME } from '../../contracts/schema.ts';

export const KUMO_INSTANCE_XMLNS = 'https://kumo.dev/xmlns/instance/1.0';

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
  nics: DomainNic[];
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

export class DomainSpecError extends Error {
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
/** C0 controls, DEL and C1 controls: never in a name, path or command line. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** x86 COMMAND_LINE_SIZE is 2048 including the terminating NUL. */
const CMDLINE_MAX = 2047;
const PATH_MAX = 4095;

/** Nova's instance_name_template `instance-%08x` for an integer instance id. */
export function instanceName(id: number): string {
  if (!Number.isSafeInteger(id) || id < 0 || id > 0xffffffff) {
    throw new DomainSpecError('id', `must be an integer in 0..2^32-1, got ${String(id)}`);
  }
  return `instance-${id.toString(16).padStart(8, '0')}`;
}

/** The tap device of a port: `tap` + the first 11 characters of its id (14-char limit). */
export function tapName(portId: string): string {
  return `tap${portId.slice(0, 11)}`;
}

/** Escapes text and attribute values (attributes are written in single quotes). */
export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&apos;';
    }
  });
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
  if (CONTROL.test(s)) throw new DomainSpecError(field, 'must not contain control characters');
  if (!s.isWellFormed()) throw new DomainSpecError(field, 'must be well-formed Unicode');
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

interface Checked {
  uuid: string;
  name: string;
  displayName: string;
  vcpus: number;
  ramMiB: number;
  diskGiB: number | undefined;
  virtType: VirtType;
  disk: { path: string; format: DiskFormat } | undefined;
  kernel: string | undefined;
  initrd: string | undefined;
  cmdline: string | undefined;
  nics: CheckedNic[];
  consoleLog: string;
  flavorName: string;
  imageId: string;
  created: string;
  host: string | undefined;
}

type CheckedNic = {
  portId: string;
  mac: string;
  mtu: number | undefined;
} & ({ vif: 'ovs'; bridge: string } | { vif: 'ethernet' });

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

/** Validates a spec; throws `DomainSpecError` naming the first bad field. */
export function validateDomainSpec(spec: DomainSpec): Checked {
  if (typeof spec !== 'object' || spec === null) throw new DomainSpecError('spec', 'is missing');
  const flavor = spec.flavor ?? ({} as DomainSpec['flavor']);
  const meta = spec.metadata ?? ({} as DomainSpec['metadata']);
  const disk =
    spec.disk === undefined
      ? undefined
      : {
          path: path('disk.path', spec.disk.path),
          format: oneOf('disk.format', spec.disk.format, ['qcow2', 'raw'] as const),
        };
  const kernel = opt(spec.kernel, (v) => path('kernel', v));
  const initrd = opt(spec.initrd, (v) => path('initrd', v));
  const cmdline = opt(spec.cmdline, (v) => text('cmdline', v, CMDLINE_MAX));
  if (kernel === undefined && (initrd !== undefined || cmdline !== undefined)) {
    throw new DomainSpecError(initrd !== undefined ? 'initrd' : 'cmdline', 'needs kernel');
  }
  if (kernel === undefined && disk === undefined) {
    throw new DomainSpecError('disk', 'is required when there is no kernel to boot');
  }
  if (!Array.isArray(spec.nics)) throw new DomainSpecError('nics', 'must be an array');
  const nics = spec.nics.map(checkNic);
  const seen = new Set<string>();
  nics.forEach((n, i) => {
    for (const key of [n.portId, n.mac, tapName(n.portId)]) {
      if (seen.has(key)) throw new DomainSpecError(`nics[${i}]`, `repeats ${key}`);
      seen.add(key);
    }
  });
  return {
    uuid: uuid('uuid', spec.uuid),
    name: matching('name', spec.name, INSTANCE_NAME, 'instance-%08x'),
    displayName: text('displayName', spec.displayName, 255),
    vcpus: int('flavor.vcpus', flavor.vcpus, 1, 512),
    ramMiB: int('flavor.ramMiB', flavor.ramMiB, 16, 16 * 1024 * 1024),
    diskGiB: opt(flavor.diskGiB, (v) => int('flavor.diskGiB', v, 0, 2 ** 31 - 1)),
    virtType: oneOf('virtType', spec.virtType, ['kvm', 'qemu'] as const),
    disk,
    kernel,
    initrd,
    cmdline,
    nics,
    consoleLog: path('consoleLog', spec.consoleLog),
    flavorName: text('metadata.flavorName', meta.flavorName, 255),
    imageId: uuid('metadata.imageId', meta.imageId),
    created: matching('metadata.created', meta.created, CREATED, 'an ISO 8601 timestamp'),
    host: opt(meta.host, (v) => matching('metadata.host', v, HOSTNAME, 'a host name')),
  };
}

/** Renders the domain XML of `spec` (validated first; every value escaped). */
export function renderDomainXml(spec: DomainSpec): string {
  const s = validateDomainSpec(spec);
  const e = xmlEscape;
  const out: string[] = [];
  const add = (indent: number, line: string) => out.push(`${'  '.repeat(indent)}${line}`);

  add(0, `<domain type='${s.virtType}'>`);
  add(1, `<uuid>${e(s.uuid)}</uuid>`);
  add(1, `<name>${e(s.name)}</name>`);
  add(1, '<metadata>');
  add(2, `<kumo:instance xmlns:kumo='${KUMO_INSTANCE_XMLNS}'>`);
  add(3, `<kumo:uuid>${e(s.uuid)}</kumo:uuid>`);
  add(3, `<kumo:name>${e(s.displayName)}</kumo:name>`);
  add(3, `<kumo:creationTime>${e(s.created)}</kumo:creationTime>`);
  if (s.host !== undefined) add(3, `<kumo:host>${e(s.host)}</kumo:host>`);
  add(3, `<kumo:flavor name='${e(s.flavorName)}'>`);
  add(4, `<kumo:memory>${s.ramMiB}</kumo:memory>`);
  add(4, `<kumo:vcpus>${s.vcpus}</kumo:vcpus>`);
  if (s.diskGiB !== undefined) add(4, `<kumo:disk>${s.diskGiB}</kumo:disk>`);
  add(3, '</kumo:flavor>');
  add(3, `<kumo:root type='image' uuid='${e(s.imageId)}'/>`);
  if (s.nics.length > 0) {
    add(3, '<kumo:ports>');
    for (const n of s.nics) add(4, `<kumo:port uuid='${e(n.portId)}'/>`);
    add(3, '</kumo:ports>');
  }
  add(2, '</kumo:instance>');
  add(1, '</metadata>');
  add(1, `<memory unit='KiB'>${s.ramMiB * 1024}</memory>`);
  add(1, `<currentMemory unit='KiB'>${s.ramMiB * 1024}</currentMemory>`);
  add(1, `<vcpu placement='static'>${s.vcpus}</vcpu>`);
  add(1, '<os>');
  add(2, "<type arch='x86_64' machine='pc'>hvm</type>");
  if (s.kernel !== undefined) {
    add(2, `<kernel>${e(s.kernel)}</kernel>`);
    if (s.initrd !== undefined) add(2, `<initrd>${e(s.initrd)}</initrd>`);
    if (s.cmdline !== undefined) add(2, `<cmdline>${e(s.cmdline)}</cmdline>`);
  } else {
    add(2, "<boot dev='hd'/>");
  }
  add(1, '</os>');
  add(1, '<features>');
  add(2, '<acpi/>');
  add(2, '<apic/>');
  add(1, '</features>');
  add(1, "<clock offset='utc'/>");
  add(1, '<on_poweroff>destroy</on_poweroff>');
  add(1, '<on_reboot>restart</on_reboot>');
  add(1, '<on_crash>destroy</on_crash>');
  add(1, '<devices>');
  if (s.disk !== undefined) {
    add(2, "<disk type='file' device='disk'>");
    add(3, `<driver name='qemu' type='${s.disk.format}' cache='none'/>`);
    add(3, `<source file='${e(s.disk.path)}'/>`);
    add(3, "<target dev='vda' bus='virtio'/>");
    add(2, '</disk>');
  }
  for (const n of s.nics) renderNic(n, add);
  add(2, "<serial type='file'>");
  add(3, `<source path='${e(s.consoleLog)}'/>`);
  add(3, "<target port='0'/>");
  add(2, '</serial>');
  add(2, "<console type='file'>");
  add(3, `<source path='${e(s.consoleLog)}'/>`);
  add(3, "<target type='serial' port='0'/>");
  add(2, '</console>');
  add(1, '</devices>');
  add(0, '</domain>');
  return `${out.join('\n')}\n`;
}

function renderNic(n: CheckedNic, add: (indent: number, line: string) => void): void {
  const e = xmlEscape;
  add(2, `<interface type='${n.vif === 'ovs' ? 'bridge' : 'ethernet'}'>`);
  add(3, `<mac address='${e(n.mac)}'/>`);
  if (n.vif === 'ovs') {
    add(3, `<source bridge='${e(n.bridge)}'/>`);
    add(3, "<virtualport type='openvswitch'>");
    add(4, `<parameters interfaceid='${e(n.portId)}'/>`);
    add(3, '</virtualport>');
    add(3, `<target dev='${e(tapName(n.portId))}'/>`);
  } else {
    add(3, `<target dev='${e(tapName(n.portId))}' managed='yes'/>`);
  }
  add(3, "<model type='virtio'/>");
  if (n.mtu !== undefined) add(3, `<mtu size='${n.mtu}'/>`);
  add(2, '</interface>');
}
