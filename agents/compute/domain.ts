/**
 * The libvirt domain XML of one instance, in the shape nova-compute's libvirt driver writes
 * (so operators find what they know with `virsh dumpxml`): `instance-%08x` names, the
 * instance uuid as the domain uuid, a `<metadata>` element in our own namespace (Nova's is
 * `<nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">`), virtio disk
 * `vda`, the config drive (when there is one) as Nova's read-only IDE cdrom `hdd` (the
 * machine type is `pc`: IDE; Nova uses SATA on q35), one virtio NIC per port on a `tap` + 11 characters of the port id, and a
 * file-backed serial console. A NIC is either Nova's OVS bridge interface (libvirt plugs
 * the tap into the bridge with the port id as `iface-id`) or a plain `ethernet` tap that
 * libvirt creates and the agent plugs itself (when ovs-vswitchd runs in another netns).
 * The metadata names the host that owns the domain, so an agent only ever manages its own.
 * Attached volumes are iSCSI network disks `vdb`… (volume-xml.ts), so every define puts
 * them back.
 *
 * Pure: `renderDomainXml(spec)` validates every field first (domain-spec.ts: a
 * `DomainSpecError` that names the field) and escapes every value it writes.
 */
import { portDevice } from '../../host/ip/names.ts';
import {
  type CheckedNic,
  type CheckedSpec,
  type DomainSpec,
  validateDomainSpec,
} from './domain-spec.ts';
import { renderVolumeDisk } from './volume-xml.ts';
import { xmlEscape } from './xml-escape.ts';

export {
  type DiskFormat,
  type DomainNic,
  type DomainSpec,
  DomainSpecError,
  instanceName,
  type VifType,
  type VirtType,
  validateDomainSpec,
} from './domain-spec.ts';

export const KUMO_INSTANCE_XMLNS = 'https://kumo.dev/xmlns/instance/1.0';

export { xmlEscape };

type Add = (indent: number, line: string) => void;
const e = xmlEscape;

function renderMetadata(s: CheckedSpec, add: Add): void {
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
}

function renderOs(s: CheckedSpec, add: Add): void {
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
}

function renderNic(n: CheckedNic, add: Add): void {
  add(2, `<interface type='${n.vif === 'ovs' ? 'bridge' : 'ethernet'}'>`);
  add(3, `<mac address='${e(n.mac)}'/>`);
  if (n.vif === 'ovs') {
    add(3, `<source bridge='${e(n.bridge)}'/>`);
    add(3, "<virtualport type='openvswitch'>");
    add(4, `<parameters interfaceid='${e(n.portId)}'/>`);
    add(3, '</virtualport>');
    add(3, `<target dev='${e(portDevice('tap', n.portId))}'/>`);
  } else {
    add(3, `<target dev='${e(portDevice('tap', n.portId))}' managed='yes'/>`);
  }
  add(3, "<model type='virtio'/>");
  if (n.mtu !== undefined) add(3, `<mtu size='${n.mtu}'/>`);
  add(2, '</interface>');
}

function renderDevices(s: CheckedSpec, add: Add): void {
  add(1, '<devices>');
  if (s.disk !== undefined) {
    add(2, "<disk type='file' device='disk'>");
    add(3, `<driver name='qemu' type='${s.disk.format}' cache='none'/>`);
    add(3, `<source file='${e(s.disk.path)}'/>`);
    add(3, "<target dev='vda' bus='virtio'/>");
    add(2, '</disk>');
  }
  if (s.configDrive !== undefined) {
    add(2, "<disk type='file' device='cdrom'>");
    add(3, "<driver name='qemu' type='raw'/>");
    add(3, `<source file='${e(s.configDrive)}'/>`);
    add(3, "<target dev='hdd' bus='ide'/>");
    add(3, '<readonly/>');
    add(2, '</disk>');
  }
  for (const v of s.volumes) add(0, renderVolumeDisk(v, 2));
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
}

/** Renders the domain XML of `spec` (validated first; every value escaped). */
export function renderDomainXml(spec: DomainSpec): string {
  const s = validateDomainSpec(spec);
  const out: string[] = [];
  const add: Add = (indent, line) => out.push(`${'  '.repeat(indent)}${line}`);
  add(0, `<domain type='${s.virtType}'>`);
  add(1, `<uuid>${e(s.uuid)}</uuid>`);
  add(1, `<name>${e(s.name)}</name>`);
  renderMetadata(s, add);
  add(1, `<memory unit='KiB'>${s.ramMiB * 1024}</memory>`);
  add(1, `<currentMemory unit='KiB'>${s.ramMiB * 1024}</currentMemory>`);
  add(1, `<vcpu placement='static'>${s.vcpus}</vcpu>`);
  renderOs(s, add);
  add(1, "<clock offset='utc'/>");
  add(1, '<on_poweroff>destroy</on_poweroff>');
  add(1, '<on_reboot>restart</on_reboot>');
  add(1, '<on_crash>destroy</on_crash>');
  renderDevices(s, add);
  add(0, '</domain>');
  return `${out.join('\n')}\n`;
}
