/**
 * Debian's `openstack` CLI (6.0) on floating IPs, as an operator and a project member use
 * it after `source openrc`: password auth on kumo-api's identity listener, endpoints from
 * the catalog (identity-auth-harness.ts runs both listeners in-process). The admin makes
 * the external network; the member `floating ip create` (automatic address, and `--port`
 * at once), `set --port`, `unset --port`, `list` with its filters, `show` and `delete`;
 * the refusals (a network that is not external, a member choosing the address, a fixed
 * IP that already has a floating IP) exit non-zero with Neutron's message and change
 * nothing. The router is written straight into the database (test/helpers/l3-fixtures.ts).
 *
 * Invariant under test: the client's exit code and JSON output agree with what the
 * database holds. One engine (SQLite): both engines are the other api-floatingips suites'.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Subnet } from '../../contracts/network.ts';
import type { RunResult } from '../helpers/cluster.ts';
import { seedUser } from '../helpers/identity.ts';
import { addGateway, addInterface, insertRouter } from '../helpers/l3-fixtures.ts';
import { ok, openstackAs } from '../helpers/os-clients.ts';
import { identityStack } from './identity-auth-harness.ts';

type Who = 'admin' | 'demo';
type Obj = Record<string, unknown>;

describe('the openstack CLI on floating IPs', { timeout: 120_000 }, () => {
  const s = identityStack('sqlite');
  const project: Record<Who, string> = { admin: '', demo: '' };
  const w = { router: '', ports: {} as Record<string, Obj> };

  const run = (who: Who, ...args: string[]): Promise<RunResult> =>
    openstackAs(s.main, { user: who, password: `${who}-pw`, project: who }, args);
  const json = async <T = Obj>(who: Who, ...args: string[]): Promise<T> =>
    JSON.parse(ok(await run(who, ...args, '-f', 'json'), `${who}: ${args.join(' ')}`)) as T;
  const rows = async () => ({
    fips: (await s.db.query('SELECT * FROM floatingips ORDER BY id')).map((r) => ({ ...r })),
    ports: (await s.db.query('SELECT id FROM ports ORDER BY id')).map((r) => ({ ...r })),
  });
  /** A command the client must fail, changing nothing: its stderr. */
  const refused = async (who: Who, ...args: string[]): Promise<string> => {
    const before = await rows();
    const r = await run(who, ...args);
    assert.notEqual(r.code, 0, `${who}: ${args.join(' ')} succeeded: ${r.stdout}`);
    assert.deepEqual(await rows(), before, `${args.join(' ')} changed nothing`);
    return r.stderr;
  };
  const ipOf = (port: Obj) => (port.fixed_ips as { ip_address: string }[])[0]?.ip_address;

  before(async () => {
    const seed = (name: Who, roles: string[]) =>
      seedUser(s.db, { name, password: `${name}-pw`, project: name, roles });
    project.admin = (await seed('admin', ['admin'])).projectId;
    project.demo = (await seed('demo', ['member'])).projectId;
    await json('admin', 'network', 'create', '--external', 'public');
    await json(
      'admin',
      'subnet',
      'create',
      '--network',
      'public',
      '--subnet-range',
      '203.0.113.0/24',
      'public-v4',
    );
    await json('demo', 'network', 'create', 'a');
    const sub = await json<Subnet>(
      'demo',
      'subnet',
      'create',
      '--network',
      'a',
      '--subnet-range',
      '10.0.0.0/24',
      'a-v4',
    );
    for (const name of ['vm1', 'vm2'])
      w.ports[name] = await json('demo', 'port', 'create', '--network', 'a', name);
    w.router = await insertRouter(s.db, project.demo, 'r1');
    const ext = await json<{ id: string }>('admin', 'network', 'show', 'public');
    await addGateway(s.db, w.router, ext.id);
    assert.equal(sub.gateway_ip, '10.0.0.1');
    await addInterface(s.db, w.router, sub);
  });

  test('floating ip create, set --port, unset --port, list, show, delete', async () => {
    const vm1 = w.ports.vm1 as Obj;
    const vm2 = w.ports.vm2 as Obj;
    const auto = await json('demo', 'floating', 'ip', 'create', '--description', 'web', 'public');
    assert.deepEqual(
      [auto.floating_ip_address, auto.status, auto.port_id, auto.router_id, auto.description],
      ['203.0.113.3', 'DOWN', null, null, 'web'],
    );
    const bound = await json('demo', 'floating', 'ip', 'create', '--port', 'vm1', 'public');
    assert.deepEqual(
      [bound.port_id, bound.fixed_ip_address, bound.router_id],
      [vm1.id, ipOf(vm1), w.router],
    );
    const id = String(auto.id);
    ok(await run('demo', 'floating', 'ip', 'set', '--port', 'vm2', id), 'floating ip set');
    const set = await json('demo', 'floating', 'ip', 'show', id);
    assert.deepEqual(
      [set.port_id, set.fixed_ip_address, set.router_id],
      [vm2.id, ipOf(vm2), w.router],
    );
    const listed = await json<Obj[]>('demo', 'floating', 'ip', 'list', '--port', 'vm2');
    assert.deepEqual(
      listed.map((f) => [f.ID, f['Floating IP Address'], f['Fixed IP Address'], f.Port]),
      [[id, '203.0.113.3', ipOf(vm2), vm2.id]],
    );
    const onPublic = await json<Obj[]>(
      'demo',
      'floating',
      'ip',
      'list',
      '--network',
      'public',
      '--status',
      'DOWN',
    );
    assert.deepEqual(onPublic.map((f) => f.ID).sort(), [id, String(bound.id)].sort());
    ok(await run('demo', 'floating', 'ip', 'unset', '--port', id), 'floating ip unset');
    const unset = await json('demo', 'floating', 'ip', 'show', id);
    assert.deepEqual([unset.port_id, unset.fixed_ip_address, unset.router_id], [null, null, null]);
    ok(await run('demo', 'floating', 'ip', 'delete', id, String(bound.id)), 'floating ip delete');
    assert.deepEqual(await json('demo', 'floating', 'ip', 'list'), []);
    assert.deepEqual((await rows()).fips, []);
  });

  test('refusals exit non-zero with Neutron’s message and change nothing', async () => {
    const held = await json('demo', 'floating', 'ip', 'create', '--port', 'vm1', 'public');
    const spare = await json('demo', 'floating', 'ip', 'create', 'public');
    assert.match(
      await refused('demo', 'floating', 'ip', 'create', 'a'),
      /is not a valid external network/,
    );
    const chosen = await refused(
      'demo',
      'floating',
      'ip',
      'create',
      '--floating-ip-address',
      '203.0.113.9',
      'public',
    );
    assert.match(chosen, /rule:create_floatingip:floating_ip_address\) is disallowed by policy/);
    const twice = await refused('demo', 'floating', 'ip', 'set', '--port', 'vm1', String(spare.id));
    assert.match(twice, /already has a floating IP on external network/);
    const admin = await json(
      'admin',
      'floating',
      'ip',
      'create',
      '--floating-ip-address',
      '203.0.113.9',
      '--project',
      'demo',
      'public',
    );
    assert.deepEqual([admin.floating_ip_address, admin.project_id], ['203.0.113.9', project.demo]);
    assert.equal((await json<Obj[]>('demo', 'floating', 'ip', 'list')).length, 3);
    assert.equal(held.router_id, w.router);
  });
});
