/**
 * dnsmasq's leases file as kumo-dhcp-agent reads it (host/dnsmasq/leases.ts): every field
 * checked against its pattern before it can reach a dhcp_release argv.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hostEntries, type Lease, parseLeases, releaseCommand } from '../../host/dnsmasq/leases.ts';

const LEASES = [
  '1795418532 fa:16:3e:00:00:11 10.0.0.11 host-10-0-0-11 01:fa:16:3e:00:00:11',
  '1795418533 fa:16:3e:00:00:12 10.0.0.12 * *',
  'duid 00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02',
  '1795412132 1234567 2001:DB8:0::11 host-2001-db8--11 00:03:00:01:fa:16:3e:00:00:11',
  '0 T42 2001:db8::12 * 00:03:00:01:fa:16:3e:00:00:12',
  '',
].join('\n');

describe('parseLeases', () => {
  test('IPv4 and IPv6 records and the server DUID, addresses made canonical', () => {
    const f = parseLeases(LEASES);
    assert.deepEqual(f.rejected, []);
    assert.equal(f.serverDuid, '00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02');
    assert.deepEqual(f.leases, [
      { version: 4, mac: 'fa:16:3e:00:00:11', ip: '10.0.0.11', clientId: '01:fa:16:3e:00:00:11' },
      { version: 4, mac: 'fa:16:3e:00:00:12', ip: '10.0.0.12', clientId: null },
      {
        version: 6,
        iaid: 1234567,
        temporary: false,
        ip: '2001:db8::11',
        duid: '00:03:00:01:fa:16:3e:00:00:11',
      },
      {
        version: 6,
        iaid: 42,
        temporary: true,
        ip: '2001:db8::12',
        duid: '00:03:00:01:fa:16:3e:00:00:12',
      },
    ]);
  });

  test('a line with any field off its pattern is dropped and reported; the rest is kept', () => {
    const bad = [
      '1 --help 10.0.0.5 * *',
      '1 fa:16:3e:00:00:05 10.0.0.5 * --dhcp-range=x',
      '1 FA:16:3E:00:00:05 10.0.0.5 * *',
      '1 01-fa:16:3e:00:00:05 10.0.0.5 * *',
      '1 fa:16:3e:00:00:05 010.0.0.5 * *',
      '1 fa:16:3e:00:00:05 10.0.0.5;reboot * *',
      'x fa:16:3e:00:00:05 10.0.0.5 * *',
      '1 fa:16:3e:00:00:05 10.0.0.5 *',
      '1 fa:16:3e:00:00:05 10.0.0.5 * * extra',
      '1  fa:16:3e:00:00:05 10.0.0.5 * *',
      '1 99999999999 fe80::1%eth0 * 00:01:02',
      '1 4294967296 2001:db8::5 * 00:01:02',
      '1 7 2001:db8::5 * 0:1:2',
      'duid zz:01',
      'duid 00:01:00:01:00:00:00:01:fa:16:3e:00:00:99',
      `1 fa:16:3e:00:00:05 10.0.0.5 ${'a'.repeat(1100)} *`,
    ];
    const f = parseLeases([LEASES.trimEnd(), ...bad].join('\n'));
    assert.equal(f.leases.length, 4);
    assert.deepEqual(
      f.rejected.map((r) => r.line),
      bad.map((_, i) => i + 6),
    );
    assert.deepEqual(f.rejected.slice(0, 3), [
      { line: 6, reason: 'not an Ethernet MAC address' },
      { line: 7, reason: 'bad client id' },
      { line: 8, reason: 'not an Ethernet MAC address' },
    ]);
    assert.equal(f.serverDuid, '00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02', 'the first one');
  });

  test('hostEntries reads the pairs of a rendered hosts file, IPv6 unbracketed', () => {
    assert.deepEqual(
      hostEntries(
        'fa:16:3e:00:00:11,host-10-0-0-11.openstacklocal,10.0.0.11\nfa:16:3e:00:00:11,host-2001-db8--11.openstacklocal,[2001:db8::11]\n',
      ),
      [
        { mac: 'fa:16:3e:00:00:11', ip: '10.0.0.11' },
        { mac: 'fa:16:3e:00:00:11', ip: '2001:db8::11' },
      ],
    );
  });

  test('release commands: dhcp_release with the client id, dhcp_release6 with both DUIDs', () => {
    const [v4, v4bare, v6] = parseLeases(LEASES).leases as [Lease, Lease, Lease];
    assert.deepEqual(releaseCommand('tap1', v4, null, 'qdhcp-x'), {
      argv: ['dhcp_release', 'tap1', '10.0.0.11', 'fa:16:3e:00:00:11', '01:fa:16:3e:00:00:11'],
      netns: 'qdhcp-x',
    });
    assert.deepEqual(releaseCommand('tap1', v4bare, null).argv, [
      'dhcp_release',
      'tap1',
      '10.0.0.12',
      'fa:16:3e:00:00:12',
    ]);
    assert.deepEqual(releaseCommand('tap1', v6, '00:01:02'), {
      argv: [
        'dhcp_release6',
        '--iface',
        'tap1',
        '--ip',
        '2001:db8::11',
        '--client-id',
        '00:03:00:01:fa:16:3e:00:00:11',
        '--server-id',
        '00:01:02',
        '--iaid',
        '1234567',
      ],
      okExitCodes: [3],
    });
    assert.throws(() => releaseCommand('-i', v4, null), /device/);
    assert.throws(() => releaseCommand('tap1', { ...v4, mac: 'x' } as Lease, null), /lease\.mac/);
    assert.throws(
      () => releaseCommand('tap1', { ...v4, clientId: '-x' } as Lease, null),
      /clientId/,
    );
    assert.throws(() => releaseCommand('tap1', v6, null), /serverDuid/);
  });
});
