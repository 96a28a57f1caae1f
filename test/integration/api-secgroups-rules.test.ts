/**
 * Neutron security group rules through buildApp() + inject on both engines: how a rule is
 * stored and shown (protocol names and numbers, `any`, ports, prefixes normalised to their
 * network), every invalid rule with Neutron's type and message, a missing or invisible
 * group, immutable rules, and duplicates (protocols by number, the whole address space as
 * no prefix) answered with the existing rule's id. Groups: api-secgroups.test.ts.
 *
 * Invariant under test: every refused request leaves the groups, rules, default groups
 * and port bindings exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SecurityGroupRule } from '../../contracts/secgroup.ts';
import { hexId } from '../helpers/tokens.ts';
import { err, RULE_KEYS, secgroupApp } from './api-secgroups-harness.ts';

const RULES = '/v2.0/security-group-rules';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`security group rules on ${engine}`, () => {
    const h = secgroupApp(engine);
    const { call, refused, group, rule } = h;
    const { A: memberA } = h.tokens;
    test('rules are stored and shown as Neutron stores them', async () => {
      const g = await group(memberA, { name: 'store' });
      const base = { security_group_id: g.id, direction: 'ingress' };
      const cases: [Record<string, unknown>, Partial<SecurityGroupRule>][] = [
        [
          { protocol: 'TCP', port_range_min: '22', port_range_max: 22 },
          { protocol: 'tcp', port_range_min: 22, port_range_max: 22, ethertype: 'IPv4' },
        ],
        [{ protocol: 17 }, { protocol: '17' }],
        [
          { protocol: 'any', remote_ip_prefix: '10.0.0.1/24' },
          { protocol: null, remote_ip_prefix: '10.0.0.0/24' },
        ],
        [
          { protocol: 'icmp', port_range_min: 8, port_range_max: 0 },
          { protocol: 'icmp', port_range_min: 8, port_range_max: 0 },
        ],
        [
          { ethertype: 'ipv6', protocol: 'icmpv6', remote_ip_prefix: '2001:DB8::1' },
          { ethertype: 'IPv6', protocol: 'ipv6-icmp', remote_ip_prefix: '2001:db8::1/128' },
        ],
        [
          { ethertype: 'IPv6', protocol: 1, remote_group_id: null },
          { protocol: '58', remote_group_id: null },
        ],
      ];
      for (const [body, want] of cases) {
        const r = await rule(memberA, { ...base, ...body });
        assert.deepEqual(Object.keys(r).sort(), RULE_KEYS);
        for (const [k, v] of Object.entries(want))
          assert.deepEqual(r[k as keyof SecurityGroupRule], v, `${JSON.stringify(body)} ${k}`);
        assert.equal(r.project_id, h.projects.A);
        const shown = await call(memberA, 'GET', `${RULES}/${r.id}`);
        assert.deepEqual(shown.body.security_group_rule, r);
      }
      const listed = await call(memberA, 'GET', `${RULES}?security_group_id=${g.id}&protocol=tcp`);
      assert.equal((listed.body.security_group_rules as SecurityGroupRule[]).length, 1);
      await refused(
        405,
        'MethodNotAllowed',
        memberA,
        'PUT',
        `${RULES}/${g.security_group_rules[0]?.id}`,
        {
          security_group_rule: { description: 'x' },
        },
      );
    });

    test('each invalid rule is a 400 with Neutron type and message, nothing changed', async () => {
      const g = await group(memberA, { name: 'bad' });
      const ing = { security_group_id: g.id, direction: 'ingress' };
      const cases: [Record<string, unknown>, string, string][] = [
        [
          { ...ing, direction: 'up' },
          'HTTPBadRequest',
          "Invalid input for direction. Reason: 'up' is not in ['ingress', 'egress'].",
        ],
        [
          { ...ing, ethertype: 'IPv5' },
          'SecurityGroupRuleInvalidEtherType',
          "Security group rule for ethertype 'IPv5' not supported. Allowed values are ['IPv4', 'IPv6'].",
        ],
        [{ ...ing, protocol: 'foo' }, 'SecurityGroupRuleInvalidProtocol', ''],
        [{ ...ing, protocol: 256 }, 'SecurityGroupRuleInvalidProtocol', ''],
        [
          { ...ing, protocol: 'tcp', port_range_min: 90, port_range_max: 80 },
          'SecurityGroupInvalidPortRange',
          'For TCP/UDP protocols, port_range_min must be <= port_range_max',
        ],
        [
          { ...ing, protocol: 'tcp', port_range_min: 70000 },
          'SecurityGroupInvalidPortValue',
          'Invalid value for port 70000',
        ],
        [
          { ...ing, protocol: 'tcp', port_range_min: 0, port_range_max: 5 },
          'SecurityGroupInvalidPortValue',
          'Invalid value for port 0',
        ],
        [
          { ...ing, port_range_min: 22, port_range_max: 22 },
          'SecurityGroupProtocolRequiredWithPorts',
          'Must also specify protocol if port range is given.',
        ],
        [
          { ...ing, protocol: 'icmp', port_range_min: 300 },
          'SecurityGroupInvalidIcmpValue',
          'Invalid value for ICMP type (port_range_min) 300. It must be 0 to 255.',
        ],
        [
          { ...ing, protocol: 'icmp', port_range_max: 3 },
          'SecurityGroupMissingIcmpType',
          'ICMP code (port-range-max) 3 is provided but ICMP type (port-range-min) is missing.',
        ],
        [
          { ...ing, remote_ip_prefix: '2001:db8::/64' },
          'SecurityGroupRuleParameterConflict',
          'Conflicting value ethertype IPv4 for CIDR 2001:db8::/64',
        ],
        [
          { ...ing, remote_ip_prefix: '10.0.0.0/33' },
          'HTTPBadRequest',
          "Invalid input for remote_ip_prefix. Reason: '10.0.0.0/33' is not a valid IP subnet.",
        ],
        [
          { ...ing, protocol: 'gre', port_range_min: 5, port_range_max: 5 },
          'SecurityGroupInvalidProtocolForPort',
          'Invalid protocol 47 for port range, only supported for DCCP, SCTP, TCP, UDP, UDPLITE protocols.',
        ],
        [
          { ...ing, protocol: 'ipv6-icmp' },
          'SecurityGroupEthertypeConflictWithProtocol',
          'Invalid ethertype IPv4 for protocol ipv6-icmp.',
        ],
        [
          { ...ing, remote_ip_prefix: '10.0.0.0/8', remote_group_id: g.id },
          'SecurityGroupRemoteGroupAndRemoteIpPrefix',
          'Only remote_ip_prefix or remote_group_id may be provided.',
        ],
      ];
      for (const [body, type, message] of cases) {
        const m = await refused(400, type, memberA, 'POST', RULES, { security_group_rule: body });
        if (message) assert.equal(m, message);
        else
          assert.match(
            m,
            /^Security group rule protocol .* not supported\. Only protocol values \[None, 'ah', .*'tcp', 'udp'.*\] and integer representations \[0 to 255\] are supported\.$/,
          );
      }
      const missing = hexId().replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
      for (const body of [
        { ...ing, security_group_id: missing },
        { ...ing, remote_group_id: missing },
      ])
        assert.equal(
          await refused(404, 'SecurityGroupNotFound', memberA, 'POST', RULES, {
            security_group_rule: body,
          }),
          `Security group ${missing} does not exist`,
        );
    });

    test('a duplicate rule is 409 naming the existing rule', async () => {
      const g = await group(memberA, { name: 'dup' });
      const r = await rule(memberA, {
        security_group_id: g.id,
        direction: 'ingress',
        protocol: 'tcp',
        port_range_min: 22,
        port_range_max: 22,
      });
      for (const protocol of ['tcp', '6', 6]) {
        const m = await refused(409, 'SecurityGroupRuleExists', memberA, 'POST', RULES, {
          security_group_rule: {
            security_group_id: g.id,
            direction: 'ingress',
            protocol,
            port_range_min: 22,
            port_range_max: 22,
            description: 'other',
          },
        });
        assert.equal(m, `Security group rule already exists. Rule id is ${r.id}.`);
      }
      // The starter egress rules: 0.0.0.0/0 and ::/0 are the same as no prefix.
      for (const egress of g.security_group_rules) {
        const prefix = egress.ethertype === 'IPv4' ? '0.0.0.0/0' : '::/0';
        const m = await refused(409, 'SecurityGroupRuleExists', memberA, 'POST', RULES, {
          security_group_rule: {
            security_group_id: g.id,
            direction: 'egress',
            ethertype: egress.ethertype,
            remote_ip_prefix: prefix,
          },
        });
        assert.equal(m, `Security group rule already exists. Rule id is ${egress.id}.`);
      }
      // On IPv6, icmp, icmpv6, ipv6-icmp and 58 are one protocol.
      const v6 = { security_group_id: g.id, direction: 'ingress', ethertype: 'IPv6' };
      const icmp6 = await rule(memberA, { ...v6, protocol: 'icmp' });
      for (const protocol of ['icmpv6', 'ipv6-icmp', '58']) {
        const m = await refused(409, 'SecurityGroupRuleExists', memberA, 'POST', RULES, {
          security_group_rule: { ...v6, protocol },
        });
        assert.equal(m, `Security group rule already exists. Rule id is ${icmp6.id}.`);
      }
      const icmp4 = await rule(memberA, { ...v6, ethertype: 'IPv4', protocol: 'icmp' });
      assert.equal(icmp4.protocol, 'icmp');
    });

    test('a bulk create is all or nothing, of one project, without equal rules', async () => {
      const g = await group(memberA, { name: 'bulk' });
      const tcp = (port: number) => ({
        security_group_id: g.id,
        direction: 'ingress',
        protocol: 'tcp',
        port_range_min: port,
        port_range_max: port,
      });
      const r = await call(memberA, 'POST', RULES, { security_group_rules: [tcp(1), tcp(2)] });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const made = r.body.security_group_rules as SecurityGroupRule[];
      assert.deepEqual(Object.keys(r.body), ['security_group_rules']);
      assert.deepEqual(
        made.map((x) => x.port_range_min),
        [1, 2],
      );
      const dup = await refused(409, 'DuplicateSecurityGroupRuleInPost', memberA, 'POST', RULES, {
        security_group_rules: [tcp(3), tcp(3)],
      });
      assert.equal(dup, 'Duplicate Security Group Rule in POST.');
      await refused(409, 'SecurityGroupRuleExists', memberA, 'POST', RULES, {
        security_group_rules: [tcp(4), tcp(1)],
      });
      await refused(400, 'SecurityGroupInvalidPortRange', memberA, 'POST', RULES, {
        security_group_rules: [tcp(5), { ...tcp(9), port_range_min: 10 }],
      });
      const other = await group(h.tokens.B, { name: 'bulk-b' });
      const groups = await refused(
        400,
        'SecurityGroupNotSingleGroupRules',
        h.tokens.admin,
        'POST',
        RULES,
        {
          security_group_rules: [tcp(6), { ...tcp(6), security_group_id: other.id }],
        },
      );
      assert.equal(groups, 'Only allowed to update rules for one security profile at a time');
      const owners = await refused(
        400,
        'SecurityGroupRulesNotSingleTenant',
        h.tokens.admin,
        'POST',
        RULES,
        {
          security_group_rules: [tcp(6), { ...tcp(7), project_id: h.projects.B }],
        },
      );
      assert.equal(owners, 'Multiple tenant_ids in bulk security group rule create not allowed');
      await refused(400, 'HTTPBadRequest', memberA, 'POST', RULES, { security_group_rules: [] });
    });

    test('identical rules created at once leave one rule; the others are told its id', async () => {
      const g = await group(memberA, { name: 'race' });
      const body = {
        security_group_id: g.id,
        direction: 'ingress',
        protocol: 'udp',
        port_range_min: 53,
        port_range_max: 53,
      };
      const answers = await Promise.all(
        Array.from({ length: 5 }, () =>
          call(memberA, 'POST', RULES, { security_group_rule: body }),
        ),
      );
      const made = answers.filter((a) => a.status === 201);
      assert.equal(made.length, 1, JSON.stringify(answers.map((a) => a.status)));
      const [one] = made.map((a) => a.body.security_group_rule as SecurityGroupRule);
      const id = one?.id;
      for (const a of answers.filter((x) => x.status !== 201)) {
        assert.equal(a.status, 409);
        assert.equal(err(a).message, `Security group rule already exists. Rule id is ${id}.`);
      }
      const rows = await h.api.db.query(
        'SELECT id FROM securitygrouprules WHERE security_group_id = ? AND protocol = ?',
        [g.id, 'udp'],
      );
      assert.equal(rows.length, 1);
    });
  });
}
