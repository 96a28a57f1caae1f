/**
 * Neutron security groups and rules through buildApp() + inject on both engines, with
 * real signed tokens: exact keys, the default group (first use, its rules, unique under
 * concurrent first uses, not removable by a member, not renamable), a new group's egress
 * rules, a group in use, the cascade of remote-group rules, quotas and visibility between
 * two projects. Rules: api-secgroups-rules.test.ts.
 *
 * Invariant under test: every refused request leaves the groups, rules, default groups
 * and port bindings exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Network, Port } from '../../contracts/network.ts';
import type { SecurityGroup, SecurityGroupRule } from '../../contracts/secgroup.ts';
import { hexId } from '../helpers/tokens.ts';
import { err, GROUP_KEYS, RULE_KEYS, secgroupApp } from './api-secgroups-harness.ts';

const strip = (r: SecurityGroupRule) => ({
  direction: r.direction,
  ethertype: r.ethertype,
  protocol: r.protocol,
  ports: [r.port_range_min, r.port_range_max],
  remote_ip_prefix: r.remote_ip_prefix,
  remote_group_id: r.remote_group_id,
});
const anyRule = (direction: string, ethertype: string, remote: string | null = null) => ({
  direction,
  ethertype,
  protocol: null,
  ports: [null, null],
  remote_ip_prefix: null,
  remote_group_id: remote,
});
/** Rules made in one transaction share a timestamp: compare them as a set. */
const byJson = (a: object, b: object) => JSON.stringify(a).localeCompare(JSON.stringify(b));
const RULES = '/v2.0/security-group-rules';
const GROUPS = '/v2.0/security-groups';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`security groups on ${engine}`, () => {
    const h = secgroupApp(engine);
    const { call, refused, group, rule, defaultOf } = h;
    const { A: memberA, B: memberB, admin } = h.tokens;

    test('the default group appears on first list with its four rules, once under races', async () => {
      const p = hexId();
      const token = h.memberOf(p);
      const lists = await Promise.all(Array.from({ length: 6 }, () => call(token, 'GET', GROUPS)));
      for (const l of lists) assert.equal(l.status, 200);
      const rows = await h.api.db.query('SELECT * FROM securitygroups WHERE project_id = ?', [p]);
      assert.equal(rows.length, 1);
      const dflt = await defaultOf(token);
      assert.deepEqual(Object.keys(dflt).sort(), GROUP_KEYS);
      assert.equal(dflt.description, 'Default security group');
      assert.equal(dflt.project_id, p);
      assert.deepEqual(dflt.tags, []);
      assert.deepEqual(dflt.security_group_rules.map(strip).sort(byJson), [
        anyRule('egress', 'IPv4'),
        anyRule('egress', 'IPv6'),
        anyRule('ingress', 'IPv4', dflt.id),
        anyRule('ingress', 'IPv6', dflt.id),
      ]);
      for (const r of dflt.security_group_rules) assert.deepEqual(Object.keys(r).sort(), RULE_KEYS);
      const admins = await call(admin, 'GET', `${GROUPS}?project_id=${hexId()}`);
      assert.equal((admins.body.security_groups as SecurityGroup[]).length, 1);
      // Listing rules first makes the default group too, as Neutron's get_security_group_rules.
      const fresh = await call(h.memberOf(hexId()), 'GET', RULES);
      assert.equal(fresh.status, 200);
      assert.equal((fresh.body.security_group_rules as SecurityGroupRule[]).length, 4);
    });

    test('create, show, list, update, delete with Neutron keys and egress rules', async () => {
      const g = await group(memberA, { name: 'web', description: 'd' });
      assert.deepEqual(Object.keys(g).sort(), GROUP_KEYS);
      assert.equal(g.project_id, h.projects.A);
      assert.equal(g.tenant_id, h.projects.A);
      assert.deepEqual(g.security_group_rules.map(strip).sort(byJson), [
        anyRule('egress', 'IPv4'),
        anyRule('egress', 'IPv6'),
      ]);
      const shown = (await call(memberA, 'GET', `${GROUPS}/${g.id}`)).body.security_group;
      assert.deepEqual(shown, g);
      const listed = await call(memberA, 'GET', `${GROUPS}?name=web`);
      assert.deepEqual(listed.body.security_groups, [g]);
      const picked = await call(memberA, 'GET', `${GROUPS}/${g.id}?fields=id&fields=name`);
      assert.deepEqual(picked.body.security_group, { id: g.id, name: 'web' });
      const put = await call(memberA, 'PUT', `${GROUPS}/${g.id}`, {
        security_group: { name: 'web2', description: 'e' },
      });
      assert.equal(put.status, 200);
      const u = put.body.security_group as SecurityGroup;
      assert.deepEqual(
        [u.name, u.description, u.revision_number > g.revision_number],
        ['web2', 'e', true],
      );
      assert.equal((await call(memberA, 'DELETE', `${GROUPS}/${g.id}`)).status, 204);
      const gone = await call(memberA, 'GET', `${GROUPS}/${g.id}`);
      const { type, message, detail } = err(gone);
      assert.deepEqual(
        { type, message, detail },
        {
          type: 'SecurityGroupNotFound',
          message: `Security group ${g.id} does not exist`,
          detail: '',
        },
      );
      const left = await h.api.db.query(
        'SELECT id FROM securitygrouprules WHERE security_group_id = ?',
        [g.id],
      );
      assert.deepEqual(left, []);
    });

    test('the default group: name refused, not renamed, not removed by a member', async () => {
      const dflt = await defaultOf(memberA);
      const m1 = await refused(409, 'SecurityGroupDefaultAlreadyExists', memberA, 'POST', GROUPS, {
        security_group: { name: 'Default' },
      });
      assert.equal(m1, 'Default security group already exists.');
      const m2 = await refused(
        409,
        'SecurityGroupCannotUpdateDefault',
        memberA,
        'PUT',
        `${GROUPS}/${dflt.id}`,
        {
          security_group: { name: 'other' },
        },
      );
      assert.equal(m2, 'Updating default security group not allowed.');
      const m3 = await refused(
        409,
        'SecurityGroupCannotRemoveDefault',
        memberA,
        'DELETE',
        `${GROUPS}/${dflt.id}`,
      );
      assert.equal(m3, 'Insufficient rights for removing default security group.');
      const d = await call(memberA, 'PUT', `${GROUPS}/${dflt.id}`, {
        security_group: { description: 'x' },
      });
      assert.equal(d.status, 200);
      await refused(400, 'BadRequest', memberA, 'POST', GROUPS, { security_group: { colour: 1 } });
      await refused(400, 'BadRequest', memberA, 'POST', GROUPS, {
        security_group: { project_id: h.projects.B },
      });
    });

    test('a group bound to a port is in use; deleting a group takes remote-group rules', async () => {
      const g = await group(memberA, { name: 'bound' });
      const net = await h.made<Network>(memberA, 'network', {});
      const port = await h.made<Port>(memberA, 'port', { network_id: net.id });
      await h.api.db.query(
        'INSERT INTO securitygroupportbindings (port_id, security_group_id) VALUES (?, ?)',
        [port.id, g.id],
      );
      const m = await refused(409, 'SecurityGroupInUse', memberA, 'DELETE', `${GROUPS}/${g.id}`);
      assert.equal(m, `Security Group ${g.id} in use.`);
      await h.api.db.query('DELETE FROM securitygroupportbindings WHERE port_id = ?', [port.id]);
      const other = await group(memberA, { name: 'other' });
      const viaRemote = await rule(memberA, {
        security_group_id: other.id,
        direction: 'ingress',
        remote_group_id: g.id,
      });
      const kept = await rule(memberA, {
        security_group_id: other.id,
        direction: 'ingress',
        protocol: 'tcp',
        port_range_min: 80,
        port_range_max: 80,
      });
      assert.equal((await call(memberA, 'DELETE', `${GROUPS}/${g.id}`)).status, 204);
      assert.equal((await call(memberA, 'GET', `${RULES}/${viaRemote.id}`)).status, 404);
      assert.equal((await call(memberA, 'GET', `${RULES}/${kept.id}`)).status, 200);
      assert.equal((await call(memberA, 'DELETE', `${RULES}/${kept.id}`)).status, 204);
      const again = await refused(
        404,
        'SecurityGroupRuleNotFound',
        memberA,
        'DELETE',
        `${RULES}/${kept.id}`,
      );
      assert.equal(again, `Security group rule ${kept.id} does not exist`);
    });

    test('quotas hold groups and rules; the admin removes a default group', async () => {
      const p = hexId();
      const token = h.memberOf(p);
      const q = await call(admin, 'PUT', `/v2.0/quotas/${p}`, {
        quota: { security_group: 2, security_group_rule: 7 },
      });
      assert.equal(q.status, 200, JSON.stringify(q.body));
      const g = await group(token, { name: 'one' });
      const m = await refused(409, 'OverQuota', token, 'POST', GROUPS, {
        security_group: { name: 'two' },
      });
      assert.equal(m, "Quota exceeded for resources: ['security_group'].");
      await rule(token, { security_group_id: g.id, direction: 'ingress', protocol: 'icmp' });
      const r = await refused(409, 'OverQuota', token, 'POST', RULES, {
        security_group_rule: { security_group_id: g.id, direction: 'ingress', protocol: 'udp' },
      });
      assert.equal(r, "Quota exceeded for resources: ['security_group_rule'].");
      const dflt = await defaultOf(token);
      assert.equal((await call(admin, 'DELETE', `${GROUPS}/${dflt.id}`)).status, 204);
    });

    test('a project sees and changes only its own groups and rules', async () => {
      const g = await group(memberB, { name: 'b-only' });
      const bRule = g.security_group_rules[0] as SecurityGroupRule;
      const listA = (await call(memberA, 'GET', GROUPS)).body.security_groups as SecurityGroup[];
      assert.ok(listA.every((x) => x.project_id === h.projects.A));
      const rulesA = (await call(memberA, 'GET', RULES)).body
        .security_group_rules as SecurityGroupRule[];
      assert.ok(rulesA.every((x) => x.project_id === h.projects.A));
      for (const [url, key] of [
        [GROUPS, 'security_groups'],
        [RULES, 'security_group_rules'],
      ] as const) {
        const asked = await call(memberA, 'GET', `${url}?project_id=${h.projects.B}`);
        assert.deepEqual([asked.status, asked.body[key]], [200, []]);
      }
      await refused(404, 'SecurityGroupNotFound', memberA, 'GET', `${GROUPS}/${g.id}`);
      await refused(404, 'SecurityGroupNotFound', memberA, 'PUT', `${GROUPS}/${g.id}`, {
        security_group: { name: 'x' },
      });
      await refused(404, 'SecurityGroupNotFound', memberA, 'DELETE', `${GROUPS}/${g.id}`);
      await refused(404, 'SecurityGroupRuleNotFound', memberA, 'DELETE', `${RULES}/${bRule.id}`);
      await refused(404, 'SecurityGroupNotFound', memberA, 'POST', RULES, {
        security_group_rule: { security_group_id: g.id, direction: 'ingress' },
      });
      const own = await group(memberA, { name: 'a-own' });
      await refused(404, 'SecurityGroupNotFound', memberA, 'POST', RULES, {
        security_group_rule: {
          security_group_id: own.id,
          direction: 'ingress',
          remote_group_id: g.id,
        },
      });
      const byAdmin = await rule(admin, {
        security_group_id: g.id,
        direction: 'ingress',
        protocol: 'tcp',
        port_range_min: 443,
        port_range_max: 443,
      });
      assert.equal(byAdmin.project_id, h.projects.B);
      const all = (await call(admin, 'GET', GROUPS)).body.security_groups as SecurityGroup[];
      assert.ok(all.some((x) => x.id === g.id) && all.some((x) => x.id === own.id));
    });

    test('the extension list names security-group, port-security, allowed-address-pairs', async () => {
      const want = {
        'security-group': ['security-group', 'The security groups extension.'],
        'port-security': ['Port Security', 'Provides port security'],
        'allowed-address-pairs': ['Allowed Address Pairs', 'Provides allowed address pairs'],
      };
      for (const [alias, [name, description]] of Object.entries(want)) {
        const r = await call(memberA, 'GET', `/v2.0/extensions/${alias}`);
        assert.equal(r.status, 200, alias);
        const ext = r.body.extension as { name: string; description: string };
        assert.deepEqual([ext.name, ext.description], [name, description]);
      }
    });
  });
}
