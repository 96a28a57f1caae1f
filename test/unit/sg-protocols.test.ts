/**
 * Stored security group rule protocols to IP protocol numbers (contracts/sg-protocols.ts)
 * and stored addresses to canonical form (api/rpc-sg.ts canonicalAddress): every name of
 * Neutron's IP_PROTOCOL_MAP and decimal 0–255 map, anything else is refused, never guessed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalAddress } from '../../api/rpc-sg.ts';
import { IP_PROTOCOL_MAP, protocolNumber } from '../../contracts/sg-protocols.ts';

test('names and numbers map, any is null', () => {
  assert.equal(protocolNumber(null), null);
  assert.equal(protocolNumber('any'), null);
  assert.deepEqual(
    ['tcp', 'udp', 'icmp', 'ipv6-icmp', 'icmpv6', 'sctp', 'gre', 'esp', 'ah', 'vrrp'].map(
      protocolNumber,
    ),
    [6, 17, 1, 58, 58, 132, 47, 50, 51, 112],
  );
  assert.deepEqual(['0', '6', '99', '255'].map(protocolNumber), [0, 6, 99, 255]);
  for (const [name, n] of Object.entries(IP_PROTOCOL_MAP)) assert.equal(protocolNumber(name), n);
});

test('anything else is refused', () => {
  for (const bad of ['', 'TCP', 'tcp ', '256', '-1', '06', '1e1', '0x6', 'toString', 'bogus'])
    assert.equal(protocolNumber(bad), undefined, bad);
});

test('stored addresses become canonical, or nothing', () => {
  assert.equal(canonicalAddress('10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalAddress('FD00:0::0001'), 'fd00::1');
  assert.equal(canonicalAddress('FD00::/16'), 'fd00::/16');
  assert.equal(canonicalAddress('10.1.0.0/16'), '10.1.0.0/16');
  for (const bad of [
    '10.0.0.1/8',
    '10.0.0.0/33',
    '10.0.0.0/8/1',
    'x',
    '',
    '10.0.0.256',
    '1.2.3.4\n',
  ])
    assert.equal(canonicalAddress(bad), undefined, bad);
});
