/**
 * The L3 agent's `router` kind through the kit's reconciler, with a FakeRunner (expected
 * argv → scripted output) and a FakeOvsdb passed in (no module patching): what a new router
 * runs, exactly and in order; that a host in order (observed through scripted `ip -j`,
 * `sysctl` and `iptables-save` output) runs nothing; a removed floating IP; teardown and a
 * foreign namespace left alone; a failed command reported ERROR with its stderr.
 *
 * The iptables input expected is rendered from agents/l3/nat.ts's own model (another
 * module's rules, tested on their own), so these tests pin the agent's sequencing, not
 * the NAT rules.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { backgroundRunner, routerKind, routerStatus } from '../../agents/l3/agent.ts';
import {
  type DesiredRouter,
  desiredRouter,
  type FipStatusUpdate,
  type L3Settings,
} from '../../agents/l3/desired.ts';
import { emptyIptables, ownedRouterIds } from '../../agents/l3/observe.ts';
import { type L3Router, parseRouterInfo } from '../../contracts/l3.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import { CommandError, type CommandSpec } from '../../core/exec.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import { createReconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import { garpCommand } from '../../host/arping/arping.ts';
import { conntrackDeleteCommands } from '../../host/conntrack/conntrack.ts';
import { BUILTIN_CHAINS, type OwnedState } from '../../host/iptables/model.ts';
import { render } from '../../host/iptables/render.ts';
import { ipForwardCommand } from '../../host/sysctl/sysctl.ts';
import { tempDir } from '../helpers/env.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

const tmp = tempDir('kumo-l3-agent-');
after(() => tmp.cleanup());
const S: L3Settings = {
  stateRoot: join(tmp.path, 'l3'),
  host: 'net1',
  intBridge: 'br-int',
  vswitchdNetns: 'klt-vswitchd',
  netnsPrefix: 'klt-',
  sendArpCount: 3,
};
const ID = '11111111-1111-4111-8111-111111111111';
const uuid = (c: string) =>
  `${c.repeat(8)}-${c.repeat(4)}-4${c.repeat(3)}-8${c.repeat(3)}-${c.repeat(12)}`;

const port = (c: string, mac: string, ip: string, cidr: string, gw: string | null, mtu = 1450) => ({
  id: uuid(c),
  network_id: uuid('9'),
  mac_address: mac,
  mtu,
  fixed_ips: [{ subnet_id: uuid(c === 'c' ? '8' : '7'), ip_address: ip, cidr, gateway_ip: gw }],
});

/** Two interfaces, a gateway, an extra route and a floating IP. */
function routerOf(id: string): L3Router {
  return {
    id,
    revision_number: 3,
    enable_snat: true,
    gw_port: port('c', 'fa:16:3e:00:0c:01', '203.0.113.10', '203.0.113.0/24', '203.0.113.1', 1500),
    interfaces: [
      port('a', 'fa:16:3e:00:0a:01', '10.1.0.1', '10.1.0.0/24', '10.1.0.1'),
      port('b', 'fa:16:3e:00:0b:01', '10.2.0.1', '10.2.0.0/24', '10.2.0.1'),
    ],
    routes: [{ destination: '10.9.0.0/16', nexthop: '10.2.0.50' }],
    floating_ips: [
      {
        id: uuid('d'),
        floating_ip_address: '203.0.113.20',
        fixed_ip_address: '10.1.0.5',
        port_id: uuid('e'),
        status: 'DOWN',
      },
    ],
  };
}
const NS = `klt-qrouter-${ID}`;
const QR_A = 'qr-aaaaaaaa-aa';
const QR_B = 'qr-bbbbbbbb-bb';
const QG = 'qg-cccccccc-cc';

/** The background GARPs for addresses appearing on qg-. */
const garps = (ips: string[]) =>
  ips.map((ip) => expected(garpCommand({ device: QG, ip, count: 3, netns: NS })));

/** A built command as the FakeRunner expects it (argv and namespace). */
const expected = (c: CommandSpec) => ({ argv: c.argv, ...(c.netns ? { netns: c.netns } : {}) });

/** What iptables-save prints for a state of ours (the nat table's builtins, our chains). */
function saveOf(state: OwnedState): string {
  const lines = ['*nat', ...BUILTIN_CHAINS.nat.map((c) => `:${c} ACCEPT [0:0]`)];
  const table = state.tables.get('nat');
  for (const chain of table?.chains.keys() ?? []) lines.push(`:${chain} - [0:0]`);
  for (const builtin of table?.jumps.keys() ?? [])
    lines.push(`-A ${builtin} -j kumo-l3-${builtin}`);
  for (const [chain, rules] of table?.chains ?? [])
    for (const r of rules) lines.push(`-A ${chain} ${r.join(' ')}`);
  return `${[...lines, 'COMMIT'].join('\n')}\n`;
}

/** `ip -j addr show` of the namespace as the plan leaves it for `d`. */
function addrJson(d: DesiredRouter): string {
  return JSON.stringify(
    d.ports.map((p, i) => ({
      ifindex: i + 2,
      ifname: p.device,
      address: p.mac,
      mtu: p.mtu,
      flags: ['BROADCAST', 'UP'],
      addr_info: p.addresses.map((cidr) => {
        const [local, len] = cidr.split('/');
        const family = local?.includes(':') ? 'inet6' : 'inet';
        return { family, local, prefixlen: Number(len), scope: 'global' };
      }),
    })),
  );
}

/** `ip -j route show table all proto static` as the kernel prints `d`'s routes. */
const routeJson = (d: DesiredRouter) =>
  JSON.stringify(
    d.routes.map((r) => ({
      dst: r.destination === '0.0.0.0/0' ? 'default' : r.destination,
      gateway: r.via,
      dev: r.dev ?? QR_B,
      flags: r.onlink ? ['onlink'] : [],
    })),
  );

/** The observe commands inside an existing namespace, answering as a host in order for `d`. */
const observed = (d: DesiredRouter, iptables = d.iptables) => [
  {
    argv: ['ip', '-n', NS, '-j', '-batch', '-'],
    stdin: 'addr show\nroute show table all proto static\n',
    stdout: `${addrJson(d)}\n${routeJson(d)}\n`,
  },
  { argv: ['sysctl', '-n', 'net.ipv4.ip_forward'], netns: NS, stdout: '1\n' },
  { argv: ['iptables-save'], netns: NS, stdout: saveOf(iptables) },
];

function harness(router: L3Router | null, opts: { netns?: boolean; ovsdb?: FakeOvsdb } = {}) {
  const sent: ResourceStatus[][] = [];
  const fipCalls: FipStatusUpdate[][] = [];
  const reporter = createStatusReporter<ResourceStatus>({
    send: async (changes) => void sent.push(changes.map((c) => c.value)),
  });
  const ovsdb = opts.ovsdb ?? new FakeOvsdb();
  const runner = new FakeRunner();
  const kind = routerKind({
    settings: S,
    runner,
    log: silentLogger(),
    ovsdb: async () => ovsdb,
    getRouter: async () => parseRouterInfo({ router: structuredClone(router) }),
    updateFloatingIpStatuses: async (_id, statuses) => void fipCalls.push(statuses),
    netnsExists: async () => opts.netns ?? false,
    status: routerStatus(reporter, silentLogger()),
  });
  const reconciler = createReconciler({ log: silentLogger(), kinds: { router: kind } });
  return { sent, fipCalls, ovsdb, runner, reconcile: () => reconciler.reconcile('router', ID) };
}

const ovsdbWithPorts = (d: DesiredRouter) => {
  const ovsdb = new FakeOvsdb();
  for (const p of d.ports)
    ovsdb.addPort('br-int', p.device, { 'iface-id': p.portId, 'attached-mac': p.mac });
  return ovsdb;
};

describe('kumo-l3-agent router kind (FakeRunner, FakeOvsdb)', () => {
  const router = routerOf(ID);
  const d = desiredRouter(router, S) as DesiredRouter;

  test('a new router runs exactly: marker, namespace, plug, move, one batch, forwarding, one restore, GARPs, statuses', async () => {
    const h = harness(router);
    h.runner.expect(
      { argv: ['ip', 'netns', 'add', NS] },
      { argv: ['ip', '-n', NS, 'link', 'set', 'dev', 'lo', 'up'] },
      {
        argv: ['ip', '-n', 'klt-vswitchd', '-batch', '-'],
        stdin: [QR_A, QR_B, QG].map((dev) => `link set dev ${dev} netns ${NS}\n`).join(''),
      },
      {
        argv: ['ip', '-n', NS, '-batch', '-'],
        stdin: [
          ...[
            [QR_A, 'fa:16:3e:00:0a:01', '10.1.0.1/24'],
            [QR_B, 'fa:16:3e:00:0b:01', '10.2.0.1/24'],
          ].flatMap(([dev, mac, cidr]) => [
            `link set dev ${dev} address ${mac}`,
            `link set dev ${dev} mtu 1450`,
            `link set dev ${dev} up`,
            `addr replace ${cidr} dev ${dev}`,
          ]),
          `link set dev ${QG} address fa:16:3e:00:0c:01`,
          `link set dev ${QG} mtu 1500`,
          `link set dev ${QG} up`,
          `addr replace 203.0.113.10/24 dev ${QG}`,
          `addr replace 203.0.113.20/32 dev ${QG}`,
          `route replace 0.0.0.0/0 via 203.0.113.1 dev ${QG} proto static`,
          'route replace 10.9.0.0/16 via 10.2.0.50 proto static',
          '',
        ].join('\n'),
      },
      expected(ipForwardCommand(NS)),
      {
        argv: ['iptables-restore', '--noflush'],
        netns: NS,
        stdin: render(d.iptables, emptyIptables()),
      },
      ...garps(['203.0.113.10', '203.0.113.20']),
    );
    await h.reconcile();
    h.runner.verify();
    assert.equal(readFileSync(join(S.stateRoot, ID, 'host'), 'utf8'), 'net1\n', 'marker');
    const [plug, ...more] = h.ovsdb.writes();
    assert.deepEqual(more, [], 'one OVSDB write plugs every port');
    const inserted = plug?.filter((op) => op.op === 'insert' && op.table === 'Interface');
    assert.deepEqual(
      inserted?.map((op) => op.op === 'insert' && op.row.name),
      [QR_A, QR_B, QG],
    );
    assert.deepEqual(h.fipCalls, [[{ id: router.floating_ips[0]?.id, status: 'ACTIVE' }]]);
    assert.deepEqual(h.sent, [[{ resource: 'router', id: ID, status: 'ACTIVE' }]]);
  });

  test('a host in order (a restarted agent) runs only its observation and reports no floating IP', async () => {
    const served = structuredClone(router);
    for (const f of served.floating_ips) f.status = 'ACTIVE';
    mkdirSync(join(S.stateRoot, ID), { recursive: true });
    writeFileSync(join(S.stateRoot, ID, 'host'), 'net1\n');
    const h = harness(served, { netns: true, ovsdb: ovsdbWithPorts(d) });
    h.runner.expect(...observed(d));
    await h.reconcile();
    assert.equal(h.runner.calls.length, 3, 'ip -j -batch, sysctl -n, iptables-save: no more');
    h.runner.verify();
    assert.deepEqual(h.ovsdb.writes(), []);
    assert.deepEqual(h.fipCalls, []);
    assert.deepEqual(h.sent, [[{ resource: 'router', id: ID, status: 'ACTIVE' }]]);
  });

  test('an IPv6 interface: forwarding observed and set for both families in one sysctl each', async () => {
    const dual = structuredClone(router);
    for (const f of dual.floating_ips) f.status = 'ACTIVE';
    dual.interfaces[0]?.fixed_ips.push({
      subnet_id: uuid('6'),
      ip_address: '2001:db8:1::1',
      cidr: '2001:db8:1::/64',
      gateway_ip: '2001:db8:1::1',
    });
    const d6 = desiredRouter(dual, S) as DesiredRouter;
    assert.deepEqual(d6.families, [4, 6]);
    const h = harness(dual, { netns: true, ovsdb: ovsdbWithPorts(d6) });
    const [batch, , save] = observed(d6);
    const keys = ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'];
    assert.ok(batch && save);
    h.runner.expect(batch, { argv: ['sysctl', '-n', ...keys], netns: NS, stdout: '1\n0\n' }, save, {
      argv: ['sysctl', '-w', ...keys.map((k) => `${k}=1`)],
      netns: NS,
    });
    await h.reconcile();
    h.runner.verify();
  });

  test('a removed floating IP: its /32 deleted, one restore, then conntrack -D both ways', async () => {
    const without = structuredClone(router);
    without.floating_ips = [];
    const after = desiredRouter(without, S) as DesiredRouter;
    const h = harness(without, { netns: true, ovsdb: ovsdbWithPorts(d) });
    h.runner.expect(
      ...observed(d),
      { argv: ['ip', '-n', NS, '-batch', '-'], stdin: `addr del 203.0.113.20/32 dev ${QG}\n` },
      {
        argv: ['iptables-restore', '--noflush'],
        netns: NS,
        stdin: render(after.iptables, d.iptables),
      },
      ...conntrackDeleteCommands('203.0.113.20', NS).map(expected),
    );
    await h.reconcile();
    h.runner.verify();
    assert.deepEqual(
      h.runner.calls.filter((c) => c.argv[0] === 'conntrack').map((c) => c.okExitCodes),
      [[1], [1]],
      'no entry to delete is not a failure',
    );
    assert.deepEqual(h.fipCalls, []);
  });

  test('a changed extra route: the old static route deleted first, the new one added, in the one batch', async () => {
    const moved = structuredClone(router);
    moved.routes = [{ destination: '10.8.0.0/16', nexthop: '10.2.0.51' }];
    for (const f of moved.floating_ips) f.status = 'ACTIVE';
    const h = harness(moved, { netns: true, ovsdb: ovsdbWithPorts(d) });
    h.runner.expect(...observed(d), {
      argv: ['ip', '-n', NS, '-batch', '-'],
      stdin:
        'route del 10.9.0.0/16 via 10.2.0.50 proto static\n' +
        'route replace 10.8.0.0/16 via 10.2.0.51 proto static\n',
    });
    await h.reconcile();
    h.runner.verify();
  });

  test('the gateway removed: qg- unplugged (its routes go with it), the NAT chains emptied, the floating IP’s connections forgotten', async () => {
    const internal = structuredClone(router);
    internal.gw_port = null;
    internal.floating_ips = [];
    const after = desiredRouter(internal, S) as DesiredRouter;
    const ovsdb = ovsdbWithPorts(d);
    const h = harness(internal, { netns: true, ovsdb });
    h.runner.expect(
      ...observed(d),
      {
        argv: ['iptables-restore', '--noflush'],
        netns: NS,
        stdin: render(after.iptables, d.iptables),
      },
      ...conntrackDeleteCommands('203.0.113.20', NS).map(expected),
    );
    await h.reconcile();
    h.runner.verify();
    assert.equal(after.iptables.tables.size, 0, 'no NAT without a gateway');
    const [unplug, ...more] = ovsdb.writes();
    assert.deepEqual(more, []);
    assert.equal(JSON.stringify(unplug).match(/"uuid"/g)?.length, 1, 'only qg-');
  });

  test('a failed restore: ERROR with its stderr, the error rethrown, no floating IP status sent', async () => {
    const h = harness(router, { netns: true, ovsdb: ovsdbWithPorts(d) });
    const stderr = 'iptables-restore: line 4 failed\n';
    h.runner.expect(...observed(d, emptyIptables()), {
      argv: ['iptables-restore', '--noflush'],
      netns: NS,
      fail: { exitCode: 2, stderr },
    });
    await assert.rejects(h.reconcile(), CommandError);
    h.runner.verify();
    assert.deepEqual(h.fipCalls, []);
    assert.deepEqual(h.sent, [
      [
        {
          resource: 'router',
          id: ID,
          status: 'ERROR',
          reason: `iptables-restore in ${NS} exited 2: ${stderr.trim()}`,
        },
      ],
    ]);
  });

  test('a router no longer served here: ports unplugged, namespace and state removed', async () => {
    const ovsdb = ovsdbWithPorts(d);
    const h = harness(null, { netns: true, ovsdb });
    h.runner.expect(
      { argv: ['ip', '-n', NS, '-j', 'addr', 'show'], stdout: addrJson(d) },
      {
        argv: ['ip', 'netns', 'del', NS],
      },
    );
    await h.reconcile();
    h.runner.verify();
    const [unplug, ...more] = ovsdb.writes();
    assert.deepEqual(more, []);
    const del = unplug?.find((op) => op.op === 'mutate' && op.table === 'Bridge');
    assert.ok(del?.op === 'mutate');
    assert.equal(JSON.stringify(del.mutations).match(/"uuid"/g)?.length, 3, 'its three ports');
    assert.ok(!existsSync(join(S.stateRoot, ID)), 'state removed');
    assert.deepEqual(h.sent, [[{ resource: 'router', id: ID, status: 'ACTIVE' }]]);
  });

  test('a qrouter namespace without our marker is never touched', async () => {
    const h = harness(null, { netns: true, ovsdb: ovsdbWithPorts(d) });
    await h.reconcile();
    assert.deepEqual(h.runner.calls, []);
    assert.deepEqual(h.ovsdb.transactions, [], 'not even observed');
  });

  test("another host's marker (a shared state_path): not listed by a resync, never touched", async () => {
    mkdirSync(join(S.stateRoot, ID), { recursive: true });
    writeFileSync(join(S.stateRoot, ID, 'host'), 'net2\n');
    assert.ok(!(await ownedRouterIds(S)).has(ID), 'a resync does not claim it');
    const h = harness(null, { netns: true, ovsdb: ovsdbWithPorts(d) });
    await h.reconcile();
    assert.deepEqual(h.runner.calls, []);
    assert.deepEqual(h.ovsdb.transactions, []);
    assert.equal(readFileSync(join(S.stateRoot, ID, 'host'), 'utf8'), 'net2\n', 'left as it was');
    rmSync(join(S.stateRoot, ID), { recursive: true });
  });
});

describe('kumo-l3-agent: a bad interface, route or floating IP is left out and reported', () => {
  const raw = routerOf(ID) as unknown as Record<string, unknown[]>;
  const BAD_IF = uuid('f');
  const BAD_FIP = uuid('6');
  raw.interfaces?.push(port('f', 'fa:16:3e:00:0f:01', '10.50.0.1', '10.60.0.0/24', null));
  raw.routes?.push(
    { destination: '10.77.0.0/16', nexthop: '10.88.0.1' },
    { destination: '10.66.0.0/16\nCOMMIT', nexthop: '10.2.0.9' },
  );
  raw.floating_ips?.push({
    id: BAD_FIP,
    floating_ip_address: '203.0.113.30',
    fixed_ip_address: '10.50.0.5',
    port_id: uuid('e'),
    status: 'ACTIVE',
  });

  test('each is listed with its reason; the rest is served; no bad value reaches a step', async () => {
    const info = parseRouterInfo({ router: raw });
    const d = desiredRouter(info.router, S, info.rejected) as DesiredRouter;
    assert.deepEqual(
      d.rejected.map((r) => [r.resource, r.id]),
      [
        ['floatingip', BAD_FIP],
        ['port', BAD_IF],
        ['route', 'route-10_77_0_0_16'],
        ['route', 'routes-2'],
      ],
    );
    const why = (id: string) => d.rejected.find((r) => r.id === id)?.reason ?? '';
    assert.match(
      why(BAD_IF),
      /^interfaces\[2\]\.fixed_ips\[0\]\.ip_address: is not on 10\.60\.0\.0\/24/,
    );
    assert.match(why('route-10_77_0_0_16'), /nexthop: is not on a subnet of the router/);
    assert.match(why(BAD_FIP), /fixed_ip_address: is not on an interface's subnet/);
    assert.deepEqual(d.fipStatuses, [
      { id: uuid('d'), status: 'ACTIVE' },
      { id: BAD_FIP, status: 'ERROR' },
    ]);
    const good = desiredRouter(routerOf(ID), S) as DesiredRouter;
    assert.deepEqual(d.ports, good.ports, 'the rest is served as before');
    assert.deepEqual(d.routes, good.routes);
    assert.deepEqual(d.iptables, good.iptables);

    const h = harness(raw as unknown as L3Router);
    h.runner.expect(
      ...[
        ['ip', 'netns', 'add', NS],
        ['ip', '-n', NS, 'link', 'set', 'dev', 'lo', 'up'],
        ['ip', '-n', 'klt-vswitchd', '-batch', '-'],
        ['ip', '-n', NS, '-batch', '-'],
      ].map((argv) => ({ argv })),
      expected(ipForwardCommand(NS)),
      { argv: ['iptables-restore', '--noflush'], netns: NS },
      ...garps(['203.0.113.10', '203.0.113.20']),
    );
    await h.reconcile();
    h.runner.verify();
    const everything = JSON.stringify([h.runner.calls, h.ovsdb.transactions]);
    for (const bad of ['10.50.0', '10.60.0', '10.77.0', '10.66.0', '203.0.113.30', 'qr-ffffffff'])
      assert.ok(!everything.includes(bad), `${bad} reached no command`);
    const status = h.sent.at(-1)?.[0];
    assert.equal(status?.status, 'ACTIVE');
    assert.deepEqual(status?.rejected, d.rejected);
    assert.deepEqual(h.fipCalls, [d.fipStatuses]);
  });

  test('a gateway port that fails the checks is the router’s error, naming the field', () => {
    const r = routerOf(ID);
    (r.gw_port as { fixed_ips: { cidr: string }[] }).fixed_ips[0] = {
      ...(r.gw_port?.fixed_ips[0] as L3Router['interfaces'][0]['fixed_ips'][0]),
      cidr: '198.51.100.0/24',
    };
    assert.throws(
      () => desiredRouter(r, S),
      /^ValidationError: gw_port\.fixed_ips\[0\]\.ip_address: is not on 198\.51\.100\.0\/24/,
    );
  });
});

test('background commands: at most the limit at once, the rest in order, a failure logged', async () => {
  const started: string[] = [];
  const finish = new Map<string, (ok: boolean) => void>();
  const runner = {
    run: (spec: CommandSpec) =>
      new Promise<{ stdout: string; stderr: string; exitCode: number }>((resolve, reject) => {
        const ip = spec.argv.at(-1) as string;
        started.push(ip);
        finish.set(ip, (ok) =>
          ok ? resolve({ stdout: '', stderr: '', exitCode: 0 }) : reject(new Error(`${ip} failed`)),
        );
      }),
  };
  const warned: unknown[] = [];
  const log = { ...silentLogger(), warn: (o: unknown) => void warned.push(o) } as Logger;
  const run = backgroundRunner(runner, log, 2);
  for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'])
    run(garpCommand({ device: QG, ip, count: 1, netns: NS }), { routerId: ID, why: ip });
  assert.deepEqual(started, ['192.0.2.1', '192.0.2.2']);
  finish.get('192.0.2.1')?.(false);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  assert.deepEqual(warned, [{ routerId: ID, why: '192.0.2.1', err: 'Error: 192.0.2.1 failed' }]);
  finish.get('192.0.2.2')?.(true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started.at(-1), '192.0.2.4');
});
