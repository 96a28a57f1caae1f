/**
 * contracts/secgroup.ts as pure functions: protocolNumber (what the OVS agent matches on),
 * storedProtocol (Neutron's convert_protocol), ruleSpec's conversions and the order of its
 * checks, and sameRule (Neutron's duplicate key).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError } from '../../contracts/errors.ts';
import {
  IP_PROTOCOL_MAP,
  protocolNumber,
  RuleBody,
  ruleSpec,
  sameRule,
  storedProtocol,
} from '../../contracts/secgroup.ts';

const GROUP = '0b6f1c7e-3b0a-4a57-9c1e-2f3d4e5f6a7b';
const spec = (body: Record<string, unknown>) =>
  ruleSpec(RuleBody.parse({ security_group_id: GROUP, direction: 'ingress', ...body }));
const typeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError);
    return e.type;
  }
  return assert.fail('no error');
};

describe('security group rules, pure', () => {
  test('protocolNumber maps names and number text; null is any; icmp stays 1', () => {
    assert.equal(protocolNumber(null), null);
    assert.equal(protocolNumber('tcp'), 6);
    assert.equal(protocolNumber('udp'), 17);
    assert.equal(protocolNumber('icmp'), 1);
    assert.equal(protocolNumber('icmpv6'), 58);
    assert.equal(protocolNumber('ipv6-icmp'), 58);
    assert.equal(protocolNumber('132'), 132);
    assert.equal(protocolNumber('0'), 0);
    for (const [name, n] of Object.entries(IP_PROTOCOL_MAP))
      assert.equal(protocolNumber(storedProtocol(name)), n, name);
  });

  test('storedProtocol keeps Neutron stored forms and refuses the rest', () => {
    assert.equal(storedProtocol(undefined), null);
    assert.equal(storedProtocol('any'), null);
    assert.equal(storedProtocol('TCP'), 'tcp');
    assert.equal(storedProtocol(6), '6');
    assert.equal(storedProtocol('006'), '6');
    assert.equal(storedProtocol('255'), '255');
    for (const bad of ['256', -1, 'tcp; rm', '', true, {}])
      assert.equal(
        typeOf(() => storedProtocol(bad)),
        'SecurityGroupRuleInvalidProtocol',
      );
  });

  test('ruleSpec normalises prefixes and defaults, checking in Neutron order', () => {
    const r = spec({
      remote_ip_prefix: '192.168.7.9/16',
      port_range_min: '5',
      protocol: 'udp',
      port_range_max: '7',
    });
    assert.deepEqual(
      [r.ethertype, r.remote_ip_prefix, r.port_range_min, r.port_range_max, r.description],
      ['IPv4', '192.168.0.0/16', 5, 7, ''],
    );
    assert.equal(spec({ ethertype: 'IPv6', remote_ip_prefix: '::' }).remote_ip_prefix, '::/128');
    // Port checks come before the prefix and remote checks.
    assert.equal(
      typeOf(() => spec({ port_range_min: 1, remote_ip_prefix: '::/0' })),
      'SecurityGroupProtocolRequiredWithPorts',
    );
    assert.equal(
      typeOf(() => spec({ remote_ip_prefix: '::/0', protocol: 'ipv6-icmp' })),
      'SecurityGroupRuleParameterConflict',
    );
    // Only protocols with ports (and ICMP's type and code) take a range, as Neutron today.
    assert.equal(
      typeOf(() => spec({ protocol: 'gre', port_range_min: 1, port_range_max: 1 })),
      'SecurityGroupInvalidProtocolForPort',
    );
    assert.equal(
      spec({ protocol: 'dccp', port_range_min: 1, port_range_max: 2 }).port_range_min,
      1,
    );
    // ICMP on IPv6 is stored as ipv6-icmp (Neutron's _make_canonical_ipv6_icmp_protocol).
    const v6 = (protocol: string) => spec({ ethertype: 'IPv6', protocol }).protocol;
    assert.deepEqual(['icmp', 'icmpv6', '1', 'tcp'].map(v6), [
      'ipv6-icmp',
      'ipv6-icmp',
      '58',
      'tcp',
    ]);
    assert.equal(spec({ remote_group_id: null }).remote_group_id, null);
    assert.equal(
      typeOf(() => spec({ protocol: 'tcp', port_range_min: 2 })),
      'SecurityGroupInvalidPortRange',
    );
    for (const bad of ['10.0.0.0/8 ', '10.0.0.0/-1', 'fe80::1%eth0', 5])
      assert.equal(
        typeOf(() => spec({ remote_ip_prefix: bad })),
        'HTTPBadRequest',
        String(bad),
      );
  });

  test('sameRule ignores description and compares protocols by number', () => {
    const a = spec({ protocol: 'tcp', port_range_min: 22, port_range_max: 22 });
    const b = spec({ protocol: '6', port_range_min: 22, port_range_max: 22, description: 'x' });
    assert.ok(sameRule(a, b));
    assert.ok(!sameRule(a, spec({ protocol: 'udp', port_range_min: 22, port_range_max: 22 })));
    assert.ok(sameRule(spec({}), spec({ remote_ip_prefix: '0.0.0.0/0' })));
    assert.ok(!sameRule(spec({}), spec({ remote_ip_prefix: '10.0.0.0/8' })));
  });
});
