/**
 * The kumo CLI's lb-* commands run in-process against a real kumo-api (lbaasApp: buildApp
 * on a real database, both engines, a real broker, listening on loopback), with one alive
 * LBaaS agent reported so pools are scheduled: the seed's walkthrough (pool, two members, a
 * monitor associated, a VIP) by names where neutron takes names, the tables it prints
 * against the API's own answers, updates, stats, the agent-scheduler commands, refusals
 * (by the CLI before sending, by the API after) that change nothing, and the deletes.
 *
 * Invariant under test: what a kumo command sets is what the API then shows, and a
 * refused command leaves every LBaaS table, port and address row as it was.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { main } from '../../cli/main.ts';
import type { Network, Subnet } from '../../contracts/network.ts';
import { runCommand } from '../helpers/cluster.ts';
import { agentState, reportAgents } from '../helpers/l3-seed.ts';
import { lbaasApp, type Obj } from '../helpers/lbaas-api.ts';
import { ok as ran } from '../helpers/os-clients.ts';

const NOW = new Date('2026-11-22T10:00:00.000Z');

/** Every row of a table (the header first) as arrays of trimmed cells; borders dropped. */
function cells(out: string): string[][] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
}

/** The data rows of a table (header and borders dropped). */
const tableRows = (out: string) => cells(out).slice(1);

/** A Field/Value table as an object of its cells. */
function showTable(out: string): Record<string, string> {
  return Object.fromEntries(tableRows(out).map(([k, v]) => [k ?? '', v ?? '']));
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`kumo lb-* commands against kumo-api on ${engine}`, { timeout: 60_000 }, () => {
    const h = lbaasApp(engine, { listen: true });
    const kumo = async (...args: string[]) => {
      let out = '';
      let err = '';
      const code = await main(args, {
        stdout: { write: (s: string) => (out += s) },
        stderr: { write: (s: string) => (err += s) },
        env: {
          KUMO_URL: `http://127.0.0.1:${h.api.port}`,
          KUMO_TOKEN: h.adminToken,
          KUMO_CONFIG: '/nonexistent/kumo.conf',
        },
      });
      return { code, out, err };
    };
    const ok = async (...args: string[]) => {
      const r = await kumo(...args);
      assert.equal(r.code, 0, `kumo ${args.join(' ')}: ${r.err}`);
      assert.equal(r.err, '');
      return r.out;
    };
    const json = async <T>(...args: string[]) => JSON.parse(await ok(...args, '-f', 'json')) as T;
    /** The command is refused with exit `code`, the error line matching, nothing changed. */
    const refused = async (code: number, line: RegExp, ...args: string[]) => {
      const before = await h.state();
      const r = await kumo(...args);
      assert.equal(r.code, code, `kumo ${args.join(' ')}: ${r.out}${r.err}`);
      assert.match(r.err, line);
      assert.equal(r.err.split('\n').length, 2, 'one line');
      assert.deepEqual(await h.state(), before, `kumo ${args.join(' ')} changed nothing`);
    };

    let agentId: string;
    let subnet: Subnet;
    const ids = { pool: '', m1: '', m2: '', hm: '', vip: '' };

    before(async () => {
      await reportAgents(h.api, NOW, [agentState('lb1', 'lbaas')]);
      const [agent] = await h.rows("SELECT id FROM agents WHERE host = 'lb1'");
      agentId = String(agent?.id);
      const net = await h.made<Network>(h.adminToken, 'network', { name: 'lb-net' });
      subnet = await h.made<Subnet>(h.adminToken, 'subnet', {
        name: 'lb-sub',
        network_id: net.id,
        cidr: '10.77.0.0/24',
        ip_version: 4,
      });
    });

    test('the walkthrough: pool, members, monitor, association and VIP, by name', async () => {
      const created = await ok(
        'lb-pool-create',
        '--name',
        'web',
        '--lb-method',
        'ROUND_ROBIN',
        '--protocol',
        'HTTP',
        '--subnet-id',
        'lb-sub',
        '--description',
        'front',
      );
      assert.match(created, /^Created a new pool:\n/);
      const pool = showTable(created);
      ids.pool = String(pool.id);
      const shown = await h.show('pools', ids.pool);
      assert.deepEqual(
        [shown.name, shown.subnet_id, shown.lb_method, shown.description, shown.status],
        ['web', subnet.id, 'ROUND_ROBIN', 'front', 'PENDING_CREATE'],
      );
      assert.deepEqual(Object.keys(pool), Object.keys(shown).sort(), 'every field, sorted');

      for (const [n, address] of [
        ['m1', '10.77.0.11'],
        ['m2', '10.77.0.12'],
      ] as const) {
        const m = await json<Obj>(
          'lb-member-create',
          'web',
          '--address',
          address,
          '--protocol-port',
          '80',
        );
        assert.deepEqual(
          [m.pool_id, m.address, m.protocol_port, m.weight],
          [ids.pool, address, 80, 1],
        );
        ids[n] = String(m.id);
      }
      const hm = await json<Obj>(
        'lb-healthmonitor-create',
        '--delay',
        '3',
        '--type',
        'HTTP',
        '--max-retries',
        '3',
        '--timeout',
        '3',
        '--url-path',
        '/healthz',
        '--expected-codes',
        '200-204',
      );
      ids.hm = String(hm.id);
      assert.deepEqual(
        [
          hm.type,
          hm.delay,
          hm.timeout,
          hm.max_retries,
          hm.http_method,
          hm.url_path,
          hm.expected_codes,
        ],
        ['HTTP', 3, 3, 3, 'GET', '/healthz', '200-204'],
      );
      assert.equal(
        await ok('lb-healthmonitor-associate', ids.hm, 'web'),
        `Associated health monitor ${ids.hm}\n`,
      );
      const vip = await json<Obj>(
        'lb-vip-create',
        'web',
        '--name',
        'web-vip',
        '--protocol-port',
        '80',
        '--protocol',
        'HTTP',
        '--subnet-id',
        'lb-sub',
        '--address',
        '10.77.0.100',
      );
      ids.vip = String(vip.id);
      assert.deepEqual(
        [vip.pool_id, vip.address, vip.connection_limit],
        [ids.pool, '10.77.0.100', -1],
      );
      const [port] = await h.rows('SELECT device_owner FROM ports WHERE id = ?', [vip.port_id]);
      assert.equal(port?.device_owner, 'neutron:LOADBALANCER');

      const after = await h.show('pools', ids.pool);
      assert.deepEqual(after.health_monitors, [ids.hm]);
      assert.deepEqual([...(after.members as string[])].sort(), [ids.m1, ids.m2].sort());
      assert.equal(after.vip_id, ids.vip);
    });

    test('lists print neutron’s columns with what the API holds', async () => {
      const pools = await ok('lb-pool-list');
      assert.match(
        pools,
        /\| id +\| name \| provider \| lb_method +\| protocol \| admin_state_up \| status +\|/,
      );
      const api = await h.show('pools', ids.pool);
      assert.deepEqual(tableRows(pools), [
        [ids.pool, 'web', 'haproxy', 'ROUND_ROBIN', 'HTTP', 'True', String(api.status)],
      ]);
      const members = tableRows(await ok('lb-member-list'));
      assert.deepEqual(
        members.map((r) => r.slice(0, 5)).sort(),
        [
          [ids.m1, '10.77.0.11', '80', '1', 'True'],
          [ids.m2, '10.77.0.12', '80', '1', 'True'],
        ].sort(),
      );
      const vips = tableRows(await ok('lb-vip-list'));
      assert.deepEqual(
        vips.map((r) => r.slice(0, 5)),
        [[ids.vip, 'web-vip', '10.77.0.100', 'HTTP', 'True']],
      );
      assert.deepEqual(tableRows(await ok('lb-healthmonitor-list')), [[ids.hm, 'HTTP', 'True']]);
      const hmShow = showTable(await ok('lb-healthmonitor-show', ids.hm));
      assert.match(
        hmShow.pools ?? '',
        new RegExp(`^\\{"pool_id": "${ids.pool}", "status": "[A-Z_]+"`),
      );
      const vipShow = await json<Obj>('lb-vip-show', 'web-vip');
      assert.deepEqual(vipShow, await h.show('vips', ids.vip));
    });

    test('updates set what the API then shows; action=clear removes persistence', async () => {
      assert.equal(
        await ok('lb-pool-update', 'web', '--lb-method', 'LEAST_CONNECTIONS'),
        'Updated pool: web\n',
      );
      assert.equal((await h.show('pools', ids.pool)).lb_method, 'LEAST_CONNECTIONS');
      await ok('lb-member-update', ids.m2, '--weight', '5', '--admin-state-up', 'False');
      const m2 = await h.show('members', ids.m2);
      assert.deepEqual([m2.weight, m2.admin_state_up], [5, false]);
      await ok(
        'lb-vip-update',
        'web-vip',
        '--session-persistence',
        'type=APP_COOKIE,cookie_name=SID',
      );
      assert.deepEqual((await h.show('vips', ids.vip)).session_persistence, {
        type: 'APP_COOKIE',
        cookie_name: 'SID',
      });
      await ok(
        'lb-vip-update',
        'web-vip',
        '--session-persistence',
        'action=clear',
        '--connection-limit',
        '100',
      );
      const vip = await h.show('vips', ids.vip);
      assert.deepEqual([vip.session_persistence, vip.connection_limit], [null, 100]);
      await ok('lb-healthmonitor-update', ids.hm, '--delay', '5', '--http-method', 'HEAD');
      const hm = await h.show('health_monitors', ids.hm);
      assert.deepEqual([hm.delay, hm.http_method], [5, 'HEAD']);
    });

    test('stats and the agent scheduler commands', async () => {
      const stats = showTable(await ok('lb-pool-stats', 'web'));
      assert.deepEqual(stats, {
        active_connections: '0',
        bytes_in: '0',
        bytes_out: '0',
        total_connections: '0',
      });
      const deadline = Date.now() + 20_000;
      let hosting: string[][] = [];
      while (Date.now() < deadline) {
        hosting = tableRows(await ok('lb-agent-hosting-pool', 'web'));
        if (hosting.length > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(hosting, [[agentId, 'lb1', 'True', ':-)']]);
      const onAgent = tableRows(await ok('lb-pool-list-on-agent', agentId));
      assert.deepEqual(
        onAgent.map((r) => r.slice(0, 5)),
        [[ids.pool, 'web', 'LEAST_CONNECTIONS', 'HTTP', 'True']],
      );
    });

    // The columns do not depend on the engine: one engine keeps the suite's runtime modest.
    if (engine === 'sqlite')
      test('the neutron CLI prints the same tables, header and cells', async () => {
        const url = `http://127.0.0.1:${h.api.port}`;
        const neutron = async (...args: string[]) =>
          ran(
            await runCommand(['neutron', '--os-token', h.adminToken, '--os-url', url, ...args], {
              OS_AUTH_TYPE: 'admin_token',
            }),
            `neutron ${args.join(' ')}`,
          );
        const same = [
          ['lb-pool-list'],
          ['lb-member-list'],
          ['lb-vip-list'],
          ['lb-healthmonitor-list'],
          ['lb-pool-show', 'web'],
          ['lb-vip-show', 'web-vip'],
          ['lb-member-show', ids.m1],
          ['lb-healthmonitor-show', ids.hm],
          ['lb-pool-stats', 'web'],
          ['lb-pool-list-on-agent', agentId],
          ['lb-agent-hosting-pool', 'web'],
        ];
        for (const args of same) {
          const theirs = await neutron(...args);
          assert.deepEqual(cells(await ok(...args)), cells(theirs), args.join(' '));
        }
      });

    test('refused by the CLI or by the API: one line, and nothing changes', async () => {
      const hm = ['lb-healthmonitor-create', '--type', 'HTTP', '--max-retries', '3'];
      await refused(
        2,
        /'--url-path <path>' argument '\/a b' is invalid/,
        ...hm,
        '--delay',
        '3',
        '--timeout',
        '3',
        '--url-path',
        '/a b',
      );
      await refused(
        2,
        /'--expected-codes <codes>' argument '200 OK' is invalid/,
        ...hm,
        '--delay',
        '3',
        '--timeout',
        '3',
        '--expected-codes',
        '200 OK',
      );
      await refused(
        2,
        /'--name <name>' argument 'web x' is invalid/,
        'lb-pool-update',
        'web',
        '--name',
        'web\nx',
      );
      await refused(
        1,
        /^kumo: 400 DelayOrTimeoutInvalid: /,
        ...hm,
        '--delay',
        '2',
        '--timeout',
        '5',
      );
      await refused(
        1,
        /^kumo: 409 MemberExists: /,
        'lb-member-create',
        'web',
        '--address',
        '10.77.0.11',
        '--protocol-port',
        '80',
      );
      await refused(
        1,
        /^kumo: 409 VipExists: /,
        'lb-vip-create',
        'web',
        '--name',
        'v2',
        '--protocol-port',
        '81',
        '--protocol',
        'HTTP',
        '--subnet-id',
        'lb-sub',
      );
      await refused(
        1,
        /^kumo: no pool with a name or id of 'nope'\n$/,
        'lb-member-create',
        'nope',
        '--address',
        '10.77.0.13',
        '--protocol-port',
        '80',
      );
      await refused(
        1,
        /^kumo: no subnet with a name or id of 'nosub'\n$/,
        'lb-pool-create',
        '--name',
        'x',
        '--lb-method',
        'SOURCE_IP',
        '--protocol',
        'TCP',
        '--subnet-id',
        'nosub',
      );
      await refused(
        1,
        /^kumo: unable to delete member\(s\): 0{8}-0000-4000-8000-0{12} \(404 MemberNotFound: /,
        'lb-member-delete',
        '00000000-0000-4000-8000-000000000000',
      );
    });

    test('disassociate and delete everything; the lists are empty', async () => {
      assert.equal(
        await ok('lb-healthmonitor-disassociate', ids.hm, 'web'),
        `Disassociated health monitor ${ids.hm}\n`,
      );
      assert.deepEqual((await h.show('pools', ids.pool)).health_monitors, []);
      assert.equal(
        await ok('lb-healthmonitor-delete', ids.hm),
        `Deleted health_monitor(s): ${ids.hm}\n`,
      );
      assert.equal(await ok('lb-vip-delete', 'web-vip'), 'Deleted vip(s): web-vip\n');
      assert.equal(
        await ok('lb-member-delete', ids.m1, ids.m2),
        `Deleted member(s): ${ids.m1}, ${ids.m2}\n`,
      );
      assert.equal(await ok('lb-pool-delete', 'web'), 'Deleted pool(s): web\n');
      for (const list of ['lb-pool-list', 'lb-member-list', 'lb-vip-list', 'lb-healthmonitor-list'])
        assert.deepEqual(await json(list), [], list);
      const [ports] = await h.rows(
        "SELECT count(*) AS n FROM ports WHERE device_owner = 'neutron:LOADBALANCER'",
      );
      assert.equal(Number(ports?.n), 0, 'the VIP port went with the VIP');
    });
  });
}
