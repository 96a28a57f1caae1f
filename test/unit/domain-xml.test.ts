/**
 * agents/compute/domain.ts (and domain-spec.ts): the Nova-shaped domain XML against a
 * golden file (and one with a config drive: the read-only IDE cdrom, only when asked),
 * the kernel-only variant, escaping, the contract's bounds, and refusal of bad input
 * naming the field.
 *
 * The golden files are test/golden/compute/domain*.xml; `KUMO_UPDATE_GOLDEN=1` rewrites it
 * (then review the diff). test/integration/guest-boot.test.ts checks the same render
 * against libvirt's domain schema.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  type DomainNic,
  type DomainSpec,
  DomainSpecError,
  instanceName,
  renderDomainXml,
  xmlEscape,
} from '../../agents/compute/domain.ts';
import { DOMAIN_LIMITS } from '../../contracts/servers.ts';
import { InvalidNameError, portDevice } from '../../host/ip/names.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'compute');

function golden(name: string, actual: string) {
  const path = join(GOLDEN, name);
  if (process.env.KUMO_UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden file ${name}`);
}

function sampleDomainSpec(): DomainSpec {
  return {
    uuid: '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8',
    name: instanceName(0x2a),
    displayName: 'web-1 <prod> & "friends"',
    flavor: { vcpus: 2, ramMiB: 512, diskGiB: 20 },
    virtType: 'kvm',
    disk: { path: '/var/lib/kumo/compute/instances/3f2a1b4c/disk', format: 'qcow2' },
    nics: [
      {
        portId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
        mac: 'FA:16:3E:12:34:56',
        bridge: 'br-int',
        mtu: 1450,
      },
      {
        portId: '1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e',
        mac: 'fa:16:3e:ab:cd:ef',
        vif: 'ethernet',
      },
    ],
    consoleLog: '/var/lib/kumo/compute/instances/3f2a1b4c/console.log',
    metadata: {
      flavorName: 'm1.small',
      imageId: '9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4',
      created: '2026-11-22T06:00:00Z',
      host: 'compute-1',
    },
  };
}

type Mutable = Record<string, unknown>;

/** Sets the value at a field path like `nics[0].mac` on a fresh sample. */
function withField(path: string, value: unknown): DomainSpec {
  const spec = sampleDomainSpec();
  const keys = path.split(/[.[\]]+/).filter((k) => k !== '');
  const last = keys.pop() as string;
  let node = spec as unknown as Mutable;
  for (const k of keys) node = node[k] as Mutable;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return spec;
}

function rejectsField(spec: DomainSpec, field: string) {
  assert.throws(
    () => renderDomainXml(spec),
    (e: unknown) => {
      assert.ok(e instanceof DomainSpecError, String(e));
      assert.equal(e.field, field, e.message);
      assert.match(e.message, new RegExp(field.replace(/[[\].]/g, '\\$&')));
      return true;
    },
  );
}

describe('domain XML', () => {
  test('full render (disk, OVS and ethernet NICs, metadata, serial console) matches the golden file', () => {
    golden('domain.xml', renderDomainXml(sampleDomainSpec()));
  });

  test("a config drive is Nova's read-only IDE cdrom hdd (the pc machine type), after the disk", () => {
    const spec = {
      ...sampleDomainSpec(),
      configDrive: '/var/lib/kumo/compute/instances/3f2a1b4c/disk.config',
    };
    const xml = renderDomainXml(spec);
    golden('domain-config-drive.xml', xml);
    assert.equal(xml.match(/device='cdrom'/g)?.length, 1);
    assert.equal(
      xml.replace(/ {4}<disk type='file' device='cdrom'>[\s\S]*?<\/disk>\n/, ''),
      renderDomainXml(sampleDomainSpec()),
      'the cdrom is the only difference',
    );
    assert.doesNotMatch(renderDomainXml(sampleDomainSpec()), /cdrom|hdd/, 'none unless asked');
    rejectsField({ ...spec, configDrive: 'disk.config' }, 'configDrive');
    rejectsField({ ...spec, configDrive: '/var/lib/kumo/../disk.config' }, 'configDrive');
    rejectsField({ ...spec, configDrive: "/var/lib/kumo/x'/>" + '\n' }, 'configDrive');
  });

  test('Nova names: instance-%08x, tap + 11 characters of the port id', () => {
    assert.equal(instanceName(0), 'instance-00000000');
    assert.equal(instanceName(0x2a), 'instance-0000002a');
    assert.equal(instanceName(0xffffffff), 'instance-ffffffff');
    assert.throws(() => instanceName(-1), DomainSpecError);
    assert.throws(() => instanceName(2 ** 32), DomainSpecError);
    assert.throws(() => instanceName(1.5), DomainSpecError);
    const tap = portDevice('tap', '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
    assert.equal(tap, 'tap0a1b2c3d-4e');
    assert.equal(tap.length, 14);
    assert.throws(() => portDevice('tap', 'x y\n'), InvalidNameError, 'port ids are validated');
  });

  test('kernel + ramdisk without a disk: <kernel>/<initrd>/<cmdline>, no <boot>, no <disk>', () => {
    const spec = sampleDomainSpec();
    delete spec.disk;
    spec.nics = [];
    spec.virtType = 'qemu';
    spec.kernel = '/var/lib/kumo/images/k';
    spec.initrd = '/var/lib/kumo/images/r';
    spec.cmdline = "console=ttyS0 root=/dev/vda x='1' & <y>";
    const xml = renderDomainXml(spec);
    assert.match(xml, /^<domain type='qemu'>/);
    assert.match(xml, /<kernel>\/var\/lib\/kumo\/images\/k<\/kernel>/);
    assert.match(xml, /<initrd>\/var\/lib\/kumo\/images\/r<\/initrd>/);
    assert.match(
      xml,
      /<cmdline>console=ttyS0 root=\/dev\/vda x=&apos;1&apos; &amp; &lt;y&gt;<\/cmdline>/,
    );
    assert.doesNotMatch(xml, /<boot|<disk|<interface|<kumo:ports>/);
    assert.match(xml, /<serial type='file'>/);
  });

  test('an OVS NIC needs its bridge; an ethernet NIC is a bare managed tap', () => {
    const spec = sampleDomainSpec();
    const [ovs, eth] = spec.nics as [DomainNic, DomainNic];
    rejectsField(
      { ...spec, nics: [{ ...ovs, bridge: undefined }] } as DomainSpec,
      'nics[0].bridge',
    );
    const xml = renderDomainXml({ ...spec, nics: [eth] });
    assert.match(xml, /<interface type='ethernet'>\n\s+<mac address='fa:16:3e:ab:cd:ef'\/>/);
    assert.match(xml, /<target dev='tap1b2c3d4e-5f' managed='yes'\/>/);
    assert.doesNotMatch(xml, /virtualport|<source bridge/);
    assert.match(xml, /<kumo:host>compute-1<\/kumo:host>/);
    assert.match(xml, /<kumo:disk>20<\/kumo:disk>/);
  });

  test('every value is escaped', () => {
    assert.equal(
      xmlEscape(`<a href="x">'&'</a>`),
      '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;',
    );
    const xml = renderDomainXml(
      withField('consoleLog', '/var/lib/kumo/it\'s <here> & "there"/console.log'),
    );
    assert.match(
      xml,
      /<source path='\/var\/lib\/kumo\/it&apos;s &lt;here&gt; &amp; &quot;there&quot;\/console.log'\/>/,
    );
    assert.match(
      renderDomainXml(sampleDomainSpec()),
      /<kumo:name>web-1 &lt;prod&gt; &amp; &quot;friends&quot;<\/kumo:name>/,
    );
    // the only raw markup characters left are our own
    const text = xml.replace(/<[^<>]*>/g, '');
    assert.doesNotMatch(text, /[<>]/);
  });

  test('bad input throws naming the field', () => {
    const cases: [string, unknown][] = [
      ['uuid', 'not-a-uuid'],
      ['uuid', undefined],
      ['name', 'instance-2a'],
      ['name', 'my-vm'],
      ['displayName', ''],
      ['displayName', 'a\nb'],
      ['displayName', 'bell\u0007'],
      ['displayName', '\ud800 lone surrogate'],
      ['displayName', 'next\u0085line'],
      ['displayName', 'x'.repeat(256)],
      ['flavor.vcpus', 0],
      ['flavor.vcpus', 513],
      ['flavor.ramMiB', 15],
      ['flavor.vcpus', 1.5],
      ['flavor.ramMiB', '512'],
      ['virtType', 'xen'],
      ['disk.path', 'relative/disk'],
      ['disk.path', '/var/lib/../etc/shadow'],
      ['disk.path', '/var/lib/kumo/disk\u0000'],
      ['disk.format', 'vmdk'],
      ['kernel', 'vmlinuz'],
      ['initrd', '/boot/x\r'],
      ['cmdline', 'x'.repeat(2048)],
      ['nics[0].portId', 'port-1'],
      ['nics[0].mac', 'fa:16:3e:12:34'],
      ['nics[0].mac', '01:00:5e:00:00:01'],
      ['nics[0].bridge', 'br int'],
      ['nics[0].bridge', 'a-very-long-bridge-name'],
      ['nics[1].mtu', 9_999_999],
      ['consoleLog', '/var/log/x\tlog'],
      ['consoleLog', 'console.log'],
      ['metadata.flavorName', 'm1.small\nx'],
      ['metadata.host', 'bad host'],
      ['flavor.diskGiB', -1],
      ['nics[0].vif', 'macvtap'],
      ['metadata.imageId', 'cirros'],
      ['metadata.created', 'yesterday'],
    ];
    for (const [field, value] of cases) {
      const spec =
        field === 'kernel' || field === 'initrd'
          ? { ...withField(field, value), kernel: field === 'kernel' ? value : '/boot/k' }
          : withField(field, value);
      rejectsField(spec as DomainSpec, field);
    }
  });

  test("the contract's DOMAIN_LIMITS are the bounds: their edges render", () => {
    const { vcpus, ramMb, text } = DOMAIN_LIMITS;
    const spec = sampleDomainSpec();
    spec.flavor = { vcpus: vcpus.max, ramMiB: ramMb.min };
    spec.displayName = 'x'.repeat(text);
    assert.match(renderDomainXml(spec), new RegExp(`<vcpu placement='static'>${vcpus.max}<`));
    spec.flavor = { vcpus: vcpus.min, ramMiB: ramMb.max };
    assert.match(renderDomainXml(spec), new RegExp(`<memory unit='KiB'>${ramMb.max * 1024}<`));
  });

  test('inconsistent specs: initrd without kernel, nothing to boot, repeated NICs', () => {
    rejectsField({ ...sampleDomainSpec(), initrd: '/boot/r' }, 'initrd');
    rejectsField({ ...sampleDomainSpec(), cmdline: 'quiet' }, 'cmdline');
    rejectsField(withField('disk', undefined), 'disk');
    const dup = sampleDomainSpec();
    const first = dup.nics[0];
    assert.ok(first);
    dup.nics.push({ ...first, mac: 'fa:16:3e:00:00:99' });
    rejectsField(dup, 'nics[2]');
    const dupMac = sampleDomainSpec();
    dupMac.nics.push({
      portId: '2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f',
      mac: 'fa:16:3e:12:34:56',
      bridge: 'br-int',
    });
    rejectsField(dupMac, 'nics[2]');
  });
});
