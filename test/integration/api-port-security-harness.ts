/**
 * The port-security suites' world: testApi() on one engine with real signed tokens for two
 * member projects (A, B) and an admin; a network with port security (10.0.0.0/24), one
 * without (10.1.0.0/24) and a shared one (10.2.0.0/24); groups made by SQL (the group API
 * is another suite's).
 *
 * Invariant: `refused` checks Neutron's error type and that ports, networks, groups,
 * default groups, port bindings, address pairs and address allocations are exactly as
 * before the request. Call inside a describe (it registers that suite's hooks).
 */
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { insertStarterRules } from '../../api/db/default-sg.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { type Body, creator, refusals } from '../helpers/neutron-refusals.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export type { Body } from '../helpers/neutron-refusals.ts';

export function portSecurityWorld(engine: 'sqlite' | 'postgres') {
  const t = testTokens();
  const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
  after(() => t.cleanup());
  const [A, B] = [hexId(), hexId()];
  const tok = {
    A: t.token({ project: A }),
    B: t.token({ project: B }),
    admin: t.token({ project: hexId(), roles: ['admin'] }),
  };
  const call = (token: string, method: string, url: string, payload?: unknown) =>
    injectAs(api, token, method, url, payload);
  const made = creator(call);
  const rows = (sql: string) => api.db.query(sql);
  const state = async () => ({
    ports: (await call(tok.admin, 'GET', '/v2.0/ports')).body,
    networks: (await call(tok.admin, 'GET', '/v2.0/networks')).body,
    groups: await rows('SELECT * FROM securitygroups ORDER BY id'),
    defaults: await rows('SELECT * FROM default_security_groups ORDER BY project_id'),
    bindings: await rows(
      'SELECT * FROM securitygroupportbindings ORDER BY port_id, security_group_id',
    ),
    pairs: await rows('SELECT * FROM allowedaddresspairs ORDER BY port_id, ip_address'),
    ips: await rows('SELECT * FROM ipallocations ORDER BY ip_address'),
  });
  const refused = refusals(call, state);
  const w = {} as { net: Network; sub: Subnet; open: Network; shared: Network };
  const port = (token: string, body: Body) =>
    made<Port>(token, 'port', { network_id: w.net.id, ...body });
  const put = (token: string, id: string, body: Body) =>
    call(token, 'PUT', `/v2.0/ports/${id}`, { port: body });
  /** A group of `project` made by SQL (the group API is another suite's). */
  const group = async (project: string, name: string) => {
    const id = randomUUID();
    await api.db.query(
      `INSERT INTO securitygroups (id, project_id, name, description, revision_number,
         created_at, updated_at) VALUES (?, ?, ?, '', 1, 'x', 'x')`,
      [id, project, name],
    );
    await insertStarterRules(api.db, id, project, 'x', false);
    return id;
  };
  const defaultOf = async (project: string) =>
    (
      await api.db.query<{ security_group_id: string }>(
        'SELECT security_group_id FROM default_security_groups WHERE project_id = ?',
        [project],
      )
    )[0]?.security_group_id;

  before(async () => {
    w.net = await made(tok.A, 'network', { name: 'a' });
    w.sub = await made(tok.A, 'subnet', {
      network_id: w.net.id,
      cidr: '10.0.0.0/24',
      ip_version: 4,
    });
    w.open = await made(tok.A, 'network', { name: 'open', port_security_enabled: false });
    await made(tok.A, 'subnet', { network_id: w.open.id, cidr: '10.1.0.0/24', ip_version: 4 });
    w.shared = await made(tok.admin, 'network', { name: 'shared', shared: true });
    await made(tok.admin, 'subnet', {
      network_id: w.shared.id,
      cidr: '10.2.0.0/24',
      ip_version: 4,
    });
  });
  return { api, A, B, tok, call, made, refused, w, port, put, group, defaultOf };
}
