/**
 * Real clients against the L3 API of one kumo-api (SQLite, listening on loopback; both
 * engines are the api-routers*, api-floatingips* and l3-agent-api suites' concern): Debian's
 * `openstack` CLI (6.0, token auth on the endpoint) for a router with its gateway made at
 * create time (--disable-snat, --fixed-ip), the floating IP refusals on that router and the
 * agent commands (`network agent add/remove router --l3`, `network agent list --router`,
 * `router list --agent`); the `neutron` CLI (python3-neutronclient 8.1: `--os-token
 * --os-url` with OS_AUTH_TYPE=admin_token, no Keystone) for the L3 agent-scheduler and
 * list commands, router-gateway-set and floatingip-(dis)associate; and the kumo CLI's router-list, router-show and floatingip-list as a
 * process, its tables checked cell by cell against the API (and against neutron's).
 *
 * Two L3 agents are report_state rows written through kumo-api's own report consumer,
 * alive under the suite's fixed clock. Invariant under test: a client's call either moves
 * the router (binding and its qr-/qg- ports' binding:host_id together) or, refused,
 * changes nothing; the openstack client exits 0 even when an add fails, so every step
 * reads the state back through the API.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { type RunResult, runCommand } from '../helpers/cluster.ts';
import { REPO } from '../helpers/env.ts';
import { agentState, bindingSnapshot, reportAgents } from '../helpers/l3-seed.ts';
import { ok } from '../helpers/os-clients.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-l3clients';
const NOW = new Date('2026-11-22T10:00:00.000Z');
type Obj = Record<string, unknown>;
interface GatewayInfo {
  network_id: string;
  enable_snat: boolean;
  external_fixed_ips: { subnet_id: string; ip_address: string }[];
}

/** A cliff-style table's cells, header first; every line a border or a row of one width. */
function cells(out: string): string[][] {
  const lines = out.split('\n').filter((l) => l !== '');
  const width = lines[0]?.length;
  for (const l of lines) {
    assert.match(l, /^[+|].*[+|]$/, `not a table line: ${l}`);
    assert.equal(l.length, width, `a ragged table:\n${out}`);
  }
  return lines
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
}

describe('L3 API through the openstack, neutron and kumo CLIs', { timeout: 120_000 }, () => {
  const api = testApi('sqlite', { settings: { adminToken: ADMIN }, now: NOW, listen: true });
  const url = () => `http://127.0.0.1:${api.port}`;
  const w = {
    agents: {} as Record<string, Agent>,
    pub: {} as { net: Network; subnet: Subnet },
    inner: {} as { net: Network; subnet: Subnet },
    vm1: {} as Port,
    router: {} as Obj,
    fip: {} as Obj,
  };

  const osc = (...args: string[]): Promise<RunResult> =>
    runCommand([
      'openstack',
      ...['--os-auth-type', 'admin_token', '--os-endpoint', url(), '--os-token', ADMIN],
      ...args,
    ]);
  const oscJson = async <T = Obj>(...args: string[]): Promise<T> =>
    JSON.parse(ok(await osc(...args, '-f', 'json'), `openstack ${args.join(' ')}`)) as T;
  const neutron = (...args: string[]): Promise<RunResult> =>
    runCommand(['neutron', '--os-token', ADMIN, '--os-url', url(), ...args], {
      OS_AUTH_TYPE: 'admin_token',
    });
  const kumo = (...args: string[]): Promise<RunResult> =>
    runCommand([process.execPath, join(REPO, 'bin', 'kumo.ts'), ...args], {
      KUMO_URL: url(),
      KUMO_TOKEN: ADMIN,
    });
  const get = async <T>(path: string, key: string): Promise<T> => {
    const res = await injectAs(api, ADMIN, 'GET', path);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body[key] as T;
  };
  const hostsOf = async (routerId: string) =>
    (await get<Agent[]>(`/v2.0/routers/${routerId}/l3-agents`, 'agents')).map((a) => a.host);
  /** The router's own ports (qg-, qr-): device owner → binding:host_id. */
  const portHosts = async (routerId: string) =>
    Object.fromEntries(
      (await get<Obj[]>(`/v2.0/ports?device_id=${routerId}`, 'ports'))
        .map((p) => [String(p.device_owner), p['binding:host_id']])
        .sort(),
    );
  const rowsOf = async (sql: string) => (await api.db.query(sql)).map((r) => ({ ...r }));
  /** Bindings, ports, routers, router ports and floating IPs: what a refusal must not touch. */
  const snapshot = async () => ({
    ...(await bindingSnapshot(api.db)),
    routers: await rowsOf('SELECT * FROM routers ORDER BY id'),
    routerPorts: await rowsOf('SELECT * FROM router_ports ORDER BY port_id'),
    fips: await rowsOf('SELECT * FROM floatingips ORDER BY id'),
  });
  const post = async <T>(path: string, key: string, body: Obj): Promise<T> => {
    const res = await injectAs(api, ADMIN, 'POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body[key] as T;
  };
  const network = async (name: string, cidr: string, external: boolean) => {
    const net = await post<Network>('/v2.0/networks', 'network', {
      name,
      'router:external': external,
    });
    const subnet = await post<Subnet>('/v2.0/subnets', 'subnet', {
      name: `${name}-sub`,
      network_id: net.id,
      cidr,
      ip_version: 4,
      enable_dhcp: false,
    });
    return { net, subnet };
  };

  before(async () => {
    await reportAgents(
      api,
      NOW,
      ['n1', 'n2'].map((host) => agentState(host, 'l3', { agent_mode: 'legacy' })),
    );
    for (const a of await get<Agent[]>('/v2.0/agents', 'agents')) w.agents[a.host] = a;
    assert.deepEqual(Object.keys(w.agents).sort(), ['n1', 'n2']);
    w.pub = await network('public', '203.0.113.0/24', true);
    w.inner = await network('inner', '10.5.0.0/24', false);
    w.vm1 = await post<Port>('/v2.0/ports', 'port', { network_id: w.inner.net.id, name: 'vm1' });
  });

  test('openstack router create with the gateway, snat and a fixed IP; a floating IP', async () => {
    w.router = await oscJson(
      ...['router', 'create', '--external-gateway', 'public', '--disable-snat'],
      ...['--fixed-ip', 'subnet=public-sub,ip-address=203.0.113.10', 'edge'],
    );
    const gw = (ip: string, snat: boolean): GatewayInfo => ({
      network_id: w.pub.net.id,
      enable_snat: snat,
      external_fixed_ips: [{ subnet_id: w.pub.subnet.id, ip_address: ip }],
    });
    assert.deepEqual(w.router.external_gateway_info, gw('203.0.113.10', false));
    ok(await osc('router', 'set', '--enable-snat', '--external-gateway', 'public', 'edge'), 'set');
    const shown = await oscJson('router', 'show', 'edge');
    assert.deepEqual(shown.external_gateway_info, gw('203.0.113.10', true), 'the port is kept');
    ok(await osc('router', 'add', 'subnet', 'edge', 'inner-sub'), 'router add subnet');
    w.fip = await oscJson('floating', 'ip', 'create', '--port', 'vm1', 'public');
    assert.deepEqual(
      [w.fip.router_id, w.fip.fixed_ip_address, w.fip.floating_network_id],
      [w.router.id, '10.5.0.2', w.pub.net.id],
    );
  });

  test('openstack refuses to remove what a floating IP needs, or to reach an unrouted port', async () => {
    const beforeRefusals = await snapshot();
    const iface = await osc('router', 'remove', 'subnet', 'edge', 'inner-sub');
    assert.notEqual(iface.code, 0);
    assert.match(
      iface.stderr,
      new RegExp(
        `Router interface for subnet ${w.inner.subnet.id} on router ${w.router.id} cannot be deleted, as it is required by one or more floating IPs`,
      ),
    );
    const unset = await osc('router', 'unset', '--external-gateway', 'edge');
    assert.notEqual(unset.code, 0);
    assert.match(
      unset.stderr,
      new RegExp(
        `Gateway cannot be updated for router ${w.router.id}, since a gateway to external network ${w.pub.net.id} is required by one or more floating IPs`,
      ),
    );
    assert.deepEqual(await snapshot(), beforeRefusals, 'the refusals changed nothing');
    const lonely = await network('lonely', '10.6.0.0/24', false);
    await post('/v2.0/ports', 'port', { network_id: lonely.net.id, name: 'vm2' });
    const beforeFip = await snapshot();
    const unreachable = await osc('floating', 'ip', 'create', '--port', 'vm2', 'public');
    assert.notEqual(unreachable.code, 0);
    assert.match(
      unreachable.stderr,
      new RegExp(
        `External network ${w.pub.net.id} is not reachable from subnet ${lonely.subnet.id}`,
      ),
    );
    assert.deepEqual(await snapshot(), beforeFip, 'the refusals changed nothing');
  });

  test('openstack network agent add/remove router move the binding and the ports', async () => {
    const routerId = String(w.router.id);
    const [first] = await hostsOf(routerId);
    assert.ok(first === 'n1' || first === 'n2', 'routerChanged hosted the new router');
    const from = w.agents[first] as Agent;
    const to = w.agents[first === 'n1' ? 'n2' : 'n1'] as Agent;
    const owners = ['network:router_gateway', 'network:router_interface'];
    const all = (host: string) => Object.fromEntries(owners.map((o) => [o, host]));
    assert.deepEqual(await portHosts(routerId), all(from.host));

    const listed = await oscJson<Obj[]>('network', 'agent', 'list', '--router', 'edge');
    assert.deepEqual(
      listed.map((a) => [a.ID, a['Agent Type'], a.Host, a.Alive, a.State, a.Binary]),
      [[from.id, 'L3 agent', from.host, true, true, 'kumo-l3-agent']],
    );
    const held = await snapshot();
    await osc('network', 'agent', 'add', 'router', '--l3', to.id, 'edge');
    assert.deepEqual(await snapshot(), held, 'an add to a second agent is refused');

    ok(await osc('network', 'agent', 'remove', 'router', '--l3', from.id, 'edge'), 'remove');
    assert.deepEqual(await oscJson('network', 'agent', 'list', '--router', 'edge'), []);
    ok(await osc('network', 'agent', 'add', 'router', '--l3', to.id, 'edge'), 'add');
    assert.deepEqual(await hostsOf(routerId), [to.host]);
    assert.deepEqual(await portHosts(routerId), all(to.host), 'qr- and qg- follow the router');
    const onTo = await oscJson<Obj[]>('router', 'list', '--agent', to.id);
    assert.deepEqual(
      onTo.map((r) => [r.ID, r.Name, r.Status, r.State]),
      [[routerId, 'edge', 'ACTIVE', true]],
    );
    assert.deepEqual(await oscJson('router', 'list', '--agent', from.id), []);
  });

  test('neutron l3-agent-router-add/-remove and l3-agent-list-hosting-router', async () => {
    const routerId = String(w.router.id);
    const [now] = await hostsOf(routerId);
    const from = w.agents[now as string] as Agent;
    const to = w.agents[now === 'n1' ? 'n2' : 'n1'] as Agent;
    const hosting = ok(await neutron('l3-agent-list-hosting-router', 'edge'), 'hosting');
    assert.deepEqual(cells(hosting), [
      ['id', 'host', 'admin_state_up', 'alive'],
      [from.id, from.host, 'True', ':-)'],
    ]);
    const held = await snapshot();
    const twice = await neutron('l3-agent-router-add', to.id, 'edge');
    assert.notEqual(twice.code, 0);
    assert.match(
      twice.stderr,
      new RegExp(`The router ${routerId} has been already hosted by the L3 Agent ${from.id}\\.`),
    );
    assert.deepEqual(await snapshot(), held, 'a refused add changes nothing');

    const removed = ok(await neutron('l3-agent-router-remove', from.id, 'edge'), 'remove');
    assert.equal(removed, 'Removed router edge from L3 agent\n');
    const added = ok(await neutron('l3-agent-router-add', to.id, 'edge'), 'add');
    assert.equal(added, 'Added router edge to L3 agent\n');
    assert.deepEqual(await hostsOf(routerId), [to.host]);
    const ports = Object.values(await portHosts(routerId));
    assert.deepEqual(ports, [to.host, to.host], 'the ports follow the router');
  });

  test('neutron router-gateway-set, floatingip-(dis)associate, the L3 lists', async () => {
    const routerId = String(w.router.id);
    const [host] = await hostsOf(routerId);
    const to = w.agents[host as string] as Agent;
    const from = w.agents[host === 'n1' ? 'n2' : 'n1'] as Agent;
    ok(await neutron('router-gateway-set', '--disable-snat', 'edge', 'public'), 'gateway-set');
    const info = (await get<Obj>(`/v2.0/routers/${routerId}`, 'router'))
      .external_gateway_info as GatewayInfo;
    assert.deepEqual(
      [info.enable_snat, info.external_fixed_ips.map((f) => f.ip_address)],
      [false, ['203.0.113.10']],
    );
    assert.deepEqual(await hostsOf(routerId), [to.host], 'a gateway update keeps the binding');
    const fipId = String(w.fip.id);
    ok(await neutron('floatingip-disassociate', fipId), 'floatingip-disassociate');
    const loose = await get<Obj>(`/v2.0/floatingips/${fipId}`, 'floatingip');
    assert.deepEqual([loose.port_id, loose.fixed_ip_address, loose.router_id], [null, null, null]);
    ok(await neutron('floatingip-associate', fipId, w.vm1.id), 'floatingip-associate');
    const bound = await get<Obj>(`/v2.0/floatingips/${fipId}`, 'floatingip');
    assert.deepEqual(
      [bound.port_id, bound.fixed_ip_address, bound.router_id],
      [w.vm1.id, '10.5.0.2', routerId],
    );
    // One line with Python's separators: the API's object as json.dumps prints it.
    const gwCell = JSON.stringify(
      (await get<Obj>(`/v2.0/routers/${routerId}`, 'router')).external_gateway_info,
    )
      .replaceAll('":', '": ')
      .replaceAll(',"', ', "');
    const onTo = ok(await neutron('router-list-on-l3-agent', to.id), 'router-list-on-l3-agent');
    const routerTable = [
      ['id', 'name', 'external_gateway_info'],
      [routerId, 'edge', gwCell],
    ];
    assert.deepEqual(cells(onTo), routerTable);
    assert.equal(ok(await neutron('router-list-on-l3-agent', from.id), 'empty').trim(), '');
    assert.deepEqual(cells(ok(await neutron('router-list'), 'router-list')), routerTable);
    const fips = ok(await neutron('floatingip-list'), 'floatingip-list');
    assert.deepEqual(cells(fips), [
      ['id', 'fixed_ip_address', 'floating_ip_address', 'port_id'],
      [String(w.fip.id), '10.5.0.2', String(w.fip.floating_ip_address), w.vm1.id],
    ]);
  });

  test('kumo router-list, router-show and floatingip-list against the API', async () => {
    const routerId = String(w.router.id);
    const router = await get<Obj>(`/v2.0/routers/${routerId}`, 'router');
    const gwCell = ok(await neutron('router-show', 'edge', '-c', 'external_gateway_info'), 'n');
    const neutronGw = cells(gwCell)[1]?.[1];
    assert.match(String(neutronGw), /^\{"network_id": "/);

    const list = ok(await kumo('router-list'), 'kumo router-list');
    assert.deepEqual(cells(list), [
      ['id', 'name', 'status', 'admin_state_up', 'external_gateway_info'],
      [routerId, 'edge', 'ACTIVE', 'True', String(neutronGw)],
    ]);
    const show = ok(await kumo('router-show', 'edge'), 'kumo router-show');
    assert.deepEqual(cells(show), [
      ['Field', 'Value'],
      ['admin_state_up', 'True'],
      ['created_at', String(router.created_at)],
      ['description', ''],
      ['external_gateway_info', String(neutronGw)],
      ['id', routerId],
      ['name', 'edge'],
      ['project_id', String(router.project_id)],
      ['revision_number', String(router.revision_number)],
      ['routes', ''],
      ['status', 'ACTIVE'],
      ['tags', ''],
      ['tenant_id', String(router.tenant_id)],
      ['updated_at', String(router.updated_at)],
    ]);
    const neutronShow = ok(await neutron('router-show', routerId), 'neutron router-show');
    assert.deepEqual(cells(show), cells(neutronShow), 'the same table as neutron router-show');
    const fips = ok(await kumo('floatingip-list'), 'kumo floatingip-list');
    assert.equal(fips, ok(await neutron('floatingip-list'), 'neutron floatingip-list'));
  });
});
