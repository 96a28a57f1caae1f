/**
 * agents/compute/volume-xml.ts: the attachment's secret and disk XML (the shape libvirt
 * takes, every field checked and escaped), reading volume disks back from a domain XML,
 * and the domain XML carrying attached volumes on every define (domain.ts, desired.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attachedVolumes, type ComputeSettings } from '../../agents/compute/desired.ts';
import { renderDomainXml } from '../../agents/compute/domain.ts';
import {
  checkVolumeDisk,
  findVolumeDisks,
  renderSecretXml,
  renderVolumeDisk,
  VolumeDiskError,
} from '../../agents/compute/volume-xml.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import type { InstanceVolume } from '../../contracts/volume.ts';

const ATT = 'aaaaaaaa-1111-4111-8111-111111111111';
const VOL = 'bbbbbbbb-2222-4222-8222-222222222222';
const INITIATOR = 'iqn.2010-10.org.kumo:compute-1';

const entry = (over: Partial<InstanceVolume> = {}): InstanceVolume => ({
  attachment_id: ATT,
  volume_id: VOL,
  device: 'vdb',
  action: 'attach',
  connection: {
    driver_volume_type: 'iscsi',
    target_iqn: `iqn.2010-10.org.openstack:volume-${VOL}`,
    target_portal: '192.0.2.10:3260',
    target_lun: 1,
    auth_method: 'CHAP',
    auth_username: 'Ab3dEfGh1jKlMn0pQrSt',
    auth_password: 'S3cretS3cretS3cr',
  },
  revision: 3,
  ...over,
});

describe('volume disk XML', () => {
  test('the disk: network iSCSI source, portal, initiator, CHAP secret, virtio target, serial', () => {
    const xml = renderVolumeDisk(checkVolumeDisk(entry(), INITIATOR));
    assert.equal(
      xml,
      [
        "<disk type='network' device='disk'>",
        "  <driver name='qemu' type='raw' cache='none'/>",
        `  <source protocol='iscsi' name='iqn.2010-10.org.openstack:volume-${VOL}/1'>`,
        "    <host name='192.0.2.10' port='3260'/>",
        `    <initiator><iqn name='${INITIATOR}'/></initiator>`,
        '  </source>',
        "  <auth username='Ab3dEfGh1jKlMn0pQrSt'>",
        `    <secret type='iscsi' uuid='${ATT}'/>`,
        '  </auth>',
        "  <target dev='vdb' bus='virtio'/>",
        `  <serial>${VOL}</serial>`,
        '</disk>',
      ].join('\n'),
    );
    assert.ok(!xml.includes('S3cretS3cretS3cr'), 'the CHAP secret is never in the disk XML');
  });

  test('an IPv6 portal: the host without brackets, its port', () => {
    const c = entry().connection;
    const xml = renderVolumeDisk(
      checkVolumeDisk(
        entry({ connection: c && { ...c, target_portal: '[2001:db8::5]:3261' } }),
        INITIATOR,
      ),
    );
    assert.match(xml, /<host name='2001:db8::5' port='3261'\/>/);
  });

  test('the secret: uuid = attachment id, usage iscsi kumo-attachment-<id>, persistent, private, owned by the initiator', () => {
    const xml = renderSecretXml(ATT, INITIATOR);
    assert.match(xml, /^<secret ephemeral='no' private='yes'>/);
    assert.match(xml, new RegExp(`<uuid>${ATT}</uuid>`));
    assert.match(
      xml,
      new RegExp(`<usage type='iscsi'>\\s*<target>kumo-attachment-${ATT}</target>`),
    );
    assert.match(
      xml,
      new RegExp(`<description>Kumo volume attachment ${ATT} for ${INITIATOR}</description>`),
    );
    assert.throws(() => renderSecretXml("x'/><evil/>", INITIATOR), VolumeDiskError);
    assert.throws(() => renderSecretXml(ATT, "iqn.2010-10.org.kumo:x'/><evil/>"), VolumeDiskError);
  });

  test('every field is checked: a value that could break out of the XML is refused, naming the field', () => {
    const c = entry().connection as NonNullable<InstanceVolume['connection']>;
    const bad: [string, InstanceVolume, string][] = [
      ['device', entry({ device: "vdb'/><x" }), 'device'],
      ['device vda', entry({ device: 'vda' }), 'device'],
      ['volume', entry({ volume_id: '<x>' }), 'volume_id'],
      ['attachment', entry({ attachment_id: 'not-a-uuid' }), 'attachment_id'],
      ['iqn', entry({ connection: { ...c, target_iqn: "iqn.x'/>" } }), 'target_iqn'],
      ['portal', entry({ connection: { ...c, target_portal: "a'b:1" } }), 'target_portal'],
      ['port 0', entry({ connection: { ...c, target_portal: '192.0.2.1:0' } }), 'target_portal'],
      ['lun', entry({ connection: { ...c, target_lun: 256 } }), 'target_lun'],
      ['user', entry({ connection: { ...c, auth_username: "u'><x" } }), 'auth_username'],
      ['no connection', entry({ connection: null }), 'connection'],
    ];
    for (const [what, v, field] of bad)
      assert.throws(
        () => checkVolumeDisk(v, INITIATOR),
        (e: unknown) => e instanceof VolumeDiskError && e.message.includes(field),
        what,
      );
    assert.throws(() => checkVolumeDisk(entry(), "iqn.2010-10.org.kumo:h'/>"), /initiator/);
  });

  test('findVolumeDisks reads back what libvirt returns (double quotes, extra elements)', () => {
    const domain = [
      '<domain><devices>',
      '<disk type="file" device="disk"><source file="/x/disk"/><target dev="vda" bus="virtio"/></disk>',
      '<disk type="network" device="disk"><driver name="qemu" type="raw" cache="none"/>',
      `<source protocol="iscsi" name="iqn.2010-10.org.openstack:volume-${VOL}/1"><host name="192.0.2.10" port="3260"/></source>`,
      `<auth username="u"><secret type="iscsi" uuid="${ATT}"/></auth>`,
      `<target dev="vdc" bus="virtio"/><serial>${VOL}</serial><alias name="virtio-disk2"/></disk>`,
      '<disk type="network" device="disk"><source protocol="rbd" name="p/i"/><target dev="vdd" bus="virtio"/>',
      `<serial>${ATT}</serial></disk>`,
      '</devices></domain>',
    ].join('\n');
    const found = findVolumeDisks(domain);
    assert.equal(found.length, 1);
    assert.deepEqual(
      { ...found[0], xml: undefined },
      { volumeId: VOL, device: 'vdc', secretUuid: ATT, xml: undefined },
    );
    assert.match(found[0]?.xml ?? '', /^<disk type="network"[\s\S]*<\/disk>$/);
  });

  test('the domain XML carries the attach entries (put back on every define), not the detach ones', () => {
    const settings: ComputeSettings = {
      host: 'compute-1',
      instancesPath: '/i',
      baseDir: '/i/_base',
      virtType: 'qemu',
      intBridge: 'br-int',
      vifPluggingTimeoutMs: 1,
      shutdownTimeoutMs: 1,
      stateDir: '/s',
      forceConfigDrive: false,
    };
    const other = 'cccccccc-3333-4333-8333-333333333333';
    const spec = {
      volumes: [
        entry(),
        entry({
          attachment_id: other,
          volume_id: other,
          device: 'vdc',
          action: 'detach',
          connection: null,
        }),
        entry({ attachment_id: 'dddddddd-4444-4444-8444-444444444444', device: 'vdd' }),
      ],
    } as InstanceSpec;
    const disks = attachedVolumes(spec, settings);
    assert.deepEqual(
      disks.map((d) => [d.device, d.initiator]),
      [['vdb', INITIATOR]],
      'the detach entry and the second entry of the same volume are left out',
    );
    const xml = renderDomainXml({
      uuid: ATT,
      name: 'instance-0000002a',
      displayName: 'vm',
      flavor: { vcpus: 1, ramMiB: 256 },
      virtType: 'qemu',
      disk: { path: '/i/x/disk', format: 'qcow2' },
      nics: [],
      volumes: disks,
      consoleLog: '/i/x/console.log',
      metadata: { flavorName: 'm1', imageId: VOL, created: '2026-12-05T07:00:00Z' },
    });
    assert.ok(xml.includes(renderVolumeDisk(disks[0] as (typeof disks)[0], 2)), xml);
    assert.equal(findVolumeDisks(xml).length, 1);
  });
});
