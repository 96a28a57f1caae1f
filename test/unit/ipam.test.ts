/**
 * api/ipam.ts (address arithmetic) and the [ml2] config keys kumo-api reads.
 *
 * Invariant under test: addresses and CIDRs come out in one canonical form, a CIDR with
 * host bits is refused with the recommended network, and the lowest free address is found.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canonicalIp,
  defaultPools,
  firstFree,
  formatCidr,
  parseCidr,
  parseIp,
  toPools,
} from '../../api/ipam.ts';
import { compileConfig } from '../../core/config.ts';

const cidr = (s: string) => {
  const r = parseCidr(s);
  assert.ok('cidr' in r, s);
  return r.cidr;
};

describe('ipam', () => {
  test('canonical addresses, IPv4 and IPv6', () => {
    assert.equal(canonicalIp('10.0.0.1'), '10.0.0.1');
    assert.equal(canonicalIp('010.0.0.1'), undefined);
    assert.equal(canonicalIp('10.0.0.256'), undefined);
    assert.equal(canonicalIp('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(canonicalIp('fe80:0:0:0:1:0:0:0'), 'fe80::1:0:0:0');
    assert.equal(canonicalIp('::ffff:192.0.2.1'), '::ffff:192.0.2.1');
    assert.equal(canonicalIp('::FFFF:c000:201'), '::ffff:192.0.2.1');
    assert.equal(canonicalIp('1::2::3'), undefined);
    assert.equal(canonicalIp('1:2:3:4:5:6:7:8:9'), undefined);
    assert.equal(parseIp('::')?.value, 0n);
  });

  test('CIDRs: host bits refused with the recommendation, prefixes checked', () => {
    assert.equal(formatCidr(cidr('2001:db8:0:1::/64')), '2001:db8:0:1::/64');
    const r = parseCidr('10.0.0.5/24');
    assert.ok('reason' in r);
    assert.match(r.reason, /'10\.0\.0\.0\/24' is recommended/);
    for (const bad of ['10.0.0.0/33', '10.0.0.0/024', '10.0.0.0', 'x/24'])
      assert.ok('reason' in parseCidr(bad), bad);
  });

  test('default pools skip network, broadcast and gateway; first free is the lowest', () => {
    const c = cidr('10.0.0.0/24');
    const gw = (parseIp('10.0.0.100')?.value ?? 0n) as bigint;
    const pools = defaultPools(c, gw);
    assert.deepEqual(toPools(4, pools), [
      { start: '10.0.0.1', end: '10.0.0.99' },
      { start: '10.0.0.101', end: '10.0.0.254' },
    ]);
    const at = (n: number) => c.network + BigInt(n);
    assert.equal(firstFree(pools, [at(1), at(2), at(4)]), at(3));
    const full = Array.from({ length: 99 }, (_, i) => at(i + 1));
    assert.equal(firstFree(pools, full), at(101));
    assert.equal(firstFree(defaultPools(cidr('10.0.0.0/30'), null), [at(1), at(2)]), undefined);
  });

  test('[ml2] keys compile with defaults and refuse bad ranges', () => {
    const cfg = compileConfig('[api]\nadmin_token = abcdefgh\n');
    assert.deepEqual(cfg.ml2.vni_ranges, [[1, 65535]]);
    assert.equal(cfg.ml2.global_physnet_mtu, 1500);
    const custom = compileConfig(
      '[ml2]\nvni_ranges = 10:20, 100:200\ntenant_network_types = gre\n',
    );
    assert.deepEqual(custom.ml2.vni_ranges, [
      [10, 20],
      [100, 200],
    ]);
    assert.deepEqual(custom.ml2.tenant_network_types, ['gre']);
    assert.throws(() => compileConfig('[ml2]\nvni_ranges = 20:10\n'), /\[ml2\] vni_ranges/);
  });
});
