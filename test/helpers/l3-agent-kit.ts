/**
 * The L3 agent's router kind as unit tests drive it: settings under a temporary state
 * root, a router with two interfaces, a gateway, an extra route and a floating IP, what a
 * host in order prints for it (`ip -j -batch`, `sysctl -n`, `iptables-save`), and a
 * harness running the kind through the kit's reconciler with a FakeRunner and FakeOvsdb.
 *
 * Invariant: the scripted observations are built from the desired state itself, so a
 * test that expects "nothing to do" fails on any difference the plan would act on.
 */
import { join } from 'node:path';
import { after } from 'node:test';
import { routerKind, routerStatus } from '../../agents/l3/agent.ts';
import type { DesiredRouter, FipStatusUpdate, L3Settings } from '../../agents/l3/desired.ts';
import { type L3Router, parseRouterInfo } from '../../contracts/l3.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { CommandSpec } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import { garpCommand } from '../../host/arping/arping.ts';
import { BUILTIN_CHAINS, type OwnedState } from '../../host/iptables/model.ts';
import { tempDir } from './env.ts';
import { FakeOvsdb } from './fake-ovsdb.ts';
import { FakeRunner } from './fake-runner.ts';

const tmp = tempDir('kumo-l3-agent-');
after(() => tmp.cleanup());
export const S: L3Settings = {
  stateRoot: join(tmp.path, 'l3'),
  host: 'net1',
  intBridge: 'br-int',
  vswitchdNetns: 'klt-vswitchd',
  netnsPrefix: 'klt-',
  sendArpCount: 3,
};
export const ID = '11111111-1111-4111-8111-111111111111';
export const uuid = (c: string) =>
  `${c.repeat(8)}-${c.repeat(4)}-4${c.repeat(3)}-8${c.repeat(3)}-${c.repeat(12)}`;

export const port = (
  c: string,
  mac: string,
  ip: string,
  cidr: string,
  gw: string | null,
  mtu = 1450,
) => ({
  id: uuid(c),
  network_id: uuid('9'),
  mac_address: mac,
  mtu,
  fixed_ips: [{ subnet_id: uuid(c === 'c' ? '8' : '7'), ip_address: ip, cidr, gateway_ip: gw }],
});

/** Two interfaces, a gateway, an extra route and a floating IP. */
export function routerOf(id: string): L3Router {
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
export const NS = `klt-qrouter-${ID}`;
export const QR_A = 'qr-aaaaaaaa-aa';
export const QR_B = 'qr-bbbbbbbb-bb';
export const QG = 'qg-cccccccc-cc';

/** The background GARPs for addresses appearing on qg-. */
export const garps = (ips: string[]) =>
  ips.map((ip) => expected(garpCommand({ device: QG, ip, count: 3, netns: NS })));

/** A built command as the FakeRunner expects it (argv and namespace). */
export const expected = (c: CommandSpec) => ({
  argv: c.argv,
  ...(c.netns ? { netns: c.netns } : {}),
});

/** What iptables-save prints for a state of ours (the nat table's builtins, our chains). */
export function saveOf(state: OwnedState): string {
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
export function addrJson(d: DesiredRouter): string {
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
export const routeJson = (d: DesiredRouter) =>
  JSON.stringify(
    d.routes.map((r) => ({
      dst: r.destination === '0.0.0.0/0' ? 'default' : r.destination,
      gateway: r.via,
      dev: r.dev ?? QR_B,
      flags: r.onlink ? ['onlink'] : [],
    })),
  );

/** The observe commands inside an existing namespace, answering as a host in order for `d`. */
export const observed = (d: DesiredRouter, iptables = d.iptables) => [
  {
    argv: ['ip', '-n', NS, '-j', '-batch', '-'],
    stdin: 'addr show\nroute show table all proto static\n',
    stdout: `${addrJson(d)}\n${routeJson(d)}\n`,
  },
  { argv: ['sysctl', '-n', 'net.ipv4.ip_forward'], netns: NS, stdout: '1\n' },
  { argv: ['iptables-save'], netns: NS, stdout: saveOf(iptables) },
];

export function harness(
  router: L3Router | null,
  opts: { netns?: boolean; ovsdb?: FakeOvsdb } = {},
) {
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

export const ovsdbWithPorts = (d: DesiredRouter) => {
  const ovsdb = new FakeOvsdb();
  for (const p of d.ports)
    ovsdb.addPort('br-int', p.device, { 'iface-id': p.portId, 'attached-mac': p.mac });
  return ovsdb;
};
