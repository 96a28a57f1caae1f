/**
 * The security group suites' app: testApi() on one engine with real signed tokens for two
 * member projects (A, B) and an admin, and helpers that create groups and rules, snapshot
 * every security group table and check refusals.
 *
 * Invariant: `refused` checks Neutron's error type and that the groups, rules, default
 * groups and port bindings are, row for row, exactly as before the request.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import type { SecurityGroup, SecurityGroupRule } from '../../contracts/secgroup.ts';
import { type Body, creator, refusals } from '../helpers/neutron-refusals.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export { type Body, err, type Res } from '../helpers/neutron-refusals.ts';

export const GROUP_KEYS = [
  'created_at',
  'description',
  'id',
  'name',
  'project_id',
  'revision_number',
  'security_group_rules',
  'tags',
  'tenant_id',
  'updated_at',
];

export const RULE_KEYS = [
  'created_at',
  'description',
  'direction',
  'ethertype',
  'id',
  'port_range_max',
  'port_range_min',
  'project_id',
  'protocol',
  'remote_group_id',
  'remote_ip_prefix',
  'revision_number',
  'security_group_id',
  'tenant_id',
  'updated_at',
];

export function secgroupApp(engine: 'sqlite' | 'postgres') {
  const t = testTokens();
  const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
  const [A, B, OPS] = [hexId(), hexId(), hexId()];
  const tokens = {
    A: t.token({ project: A }),
    B: t.token({ project: B }),
    admin: t.token({ project: OPS, roles: ['admin'] }),
  };
  after(() => t.cleanup());
  const call = (token: string, method: string, url: string, payload?: unknown) =>
    injectAs(api, token, method, url, payload);
  const made = creator(call);
  const state = async () => ({
    groups: await api.db.query('SELECT * FROM securitygroups ORDER BY id'),
    rules: await api.db.query('SELECT * FROM securitygrouprules ORDER BY id'),
    defaults: await api.db.query('SELECT * FROM default_security_groups ORDER BY project_id'),
    bindings: await api.db.query('SELECT * FROM securitygroupportbindings ORDER BY port_id'),
  });
  const refused = refusals(call, state);
  /** POST /v2.0/security-groups or …/security-group-rules, which must answer 201. */
  const sgMade = async <T>(token: string, kind: string, body: Body): Promise<T> => {
    const r = await call(token, 'POST', `/v2.0/${kind.replaceAll('_', '-')}s`, { [kind]: body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body[kind] as T;
  };
  const group = (token: string, body: Body = {}) =>
    sgMade<SecurityGroup>(token, 'security_group', body);
  const rule = (token: string, body: Body) =>
    sgMade<SecurityGroupRule>(token, 'security_group_rule', body);
  /** The default group of `token`'s project (listing makes it). */
  const defaultOf = async (token: string) => {
    const r = await call(token, 'GET', '/v2.0/security-groups?name=default');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const groups = r.body.security_groups as SecurityGroup[];
    assert.equal(groups.length, 1, JSON.stringify(groups));
    return groups[0] as SecurityGroup;
  };
  return {
    api,
    projects: { A, B, OPS },
    tokens,
    memberOf: (project: string) => t.token({ project }),
    call,
    made,
    state,
    refused,
    group,
    rule,
    defaultOf,
  };
}
