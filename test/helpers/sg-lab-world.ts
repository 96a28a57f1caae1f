/**
 * The security-group lab's world (secgroup-lab.test.ts): two lab hosts, kumo-api on
 * SQLite, one kumo-ovs-agent per host, a VXLAN network 10.0.0.0/24 and four stand-in VMs,
 * all ports made by the admin in the default project through the Neutron API:
 * T (h1, 10.0.0.10) and M (h2, .20) with no groups given (so the project's `default`),
 * N (h2, .30) in `other` (egress only), O (h2, .40) with port security disabled.
 * TCP servers listen on T (22, 80, 8080, 9000) and on O (8080).
 *
 * Invariant: `build()` returns only once every port is ACTIVE and both hosts' br-int hold
 * conntrack flows (the firewall is in force), so a test's first "refused" is the
 * firewall's doing, not a port still being wired; `destroy()` removes everything, also
 * after a failed build.
 */
import assert from 'node:assert/strict';
import { Cluster, ovsOf, type Proc } from './cluster.ts';
import { waitFor } from './env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from './lab.ts';
import { flowsOf, neutron, type SecurityGroup, type SgPort } from './sg-lab.ts';
import { stopPeers, tcpServer } from './tcp-peer.ts';

export interface SgWorld {
  lab: Lab;
  c: Cluster;
  eps: Record<string, Endpoint>;
  ports: Record<string, SgPort>;
  /** `default` and `other`. */
  groups: Record<string, SecurityGroup>;
  agents: Map<string, Proc>;
  hostName(h: LabHost): string;
  /** Starts (again) the OVS agent of `h`. */
  startAgent(h: LabHost): Proc;
  destroy(): Promise<void>;
}

const until = (what: string, fn: () => Promise<boolean>) => waitFor(what, fn, 30_000, 300);

async function makePorts(w: SgWorld, api: ReturnType<typeof neutron>) {
  const net = await api.create<{ id: string }>('network', {
    name: 'net',
    'provider:network_type': 'vxlan',
  });
  await api.create('subnet', { network_id: net.id, cidr: '10.0.0.0/24', ip_version: 4 });
  const other = await api.create<SecurityGroup>('security_group', { name: 'other' });
  const [h1, h2] = w.lab.hosts as [LabHost, LabHost];
  const layout: [string, LabHost, string, Record<string, unknown>][] = [
    ['T', h1, '10.0.0.10', {}],
    ['M', h2, '10.0.0.20', {}],
    ['N', h2, '10.0.0.30', { security_groups: [other.id] }],
    ['O', h2, '10.0.0.40', { port_security_enabled: false }],
  ];
  for (const [name, host, ip, more] of layout) {
    const port = await api.create<SgPort>('port', {
      name,
      network_id: net.id,
      fixed_ips: [{ ip_address: ip }],
      ...more,
    });
    w.ports[name] = port;
    w.eps[name] = await w.lab.endpoint(host, {
      ifaceId: port.id,
      mac: port.mac_address,
      cidr: `${ip}/24`,
    });
  }
  const defaults = await api.list<SecurityGroup>('security_group', '?name=default');
  assert.equal(defaults.length, 1, JSON.stringify(defaults));
  w.groups.default = defaults[0] as SecurityGroup;
  w.groups.other = other;
  assert.deepEqual(w.ports.T?.security_groups, [w.groups.default.id], 'no groups: the default');
  assert.deepEqual(w.ports.O?.security_groups, []);
}

async function start(w: SgWorld) {
  await w.c.startApi();
  const api = neutron(w.c);
  for (const h of w.lab.hosts) w.startAgent(h);
  await until('br-int and br-tun on both hosts', async () => {
    for (const h of w.lab.hosts) if (!/br-tun/.test(await h.vsctl(['list-br']))) return false;
    return true;
  });
  await makePorts(w, api);
  await until('all four ports ACTIVE', async () =>
    (await api.list<SgPort>('port')).every((x) => x.status === 'ACTIVE'),
  );
  await until('conntrack flows on both hosts', async () => {
    for (const h of w.lab.hosts)
      if (!(await flowsOf(h)).some((f) => f.includes('ct('))) return false;
    return true;
  });
  for (const port of [22, 80, 8080, 9000]) await tcpServer(w.eps.T?.netns as string, port);
  await tcpServer(w.eps.O?.netns as string, 8080);
}

export async function buildSgWorld(): Promise<SgWorld> {
  const lab = await createLab({ hosts: 2 });
  const c = await Cluster.create('sqlite');
  const agents = new Map<string, Proc>();
  const hostName = (h: LabHost) => `lab-${lab.prefix}-${h.name}`;
  const w: SgWorld = {
    lab,
    c,
    eps: {},
    ports: {},
    groups: {},
    agents,
    hostName,
    startAgent(h) {
      const proc = c.startAgentOn('ovs', hostName(h), ovsOf(h));
      agents.set(h.name, proc);
      return proc;
    },
    async destroy() {
      stopPeers();
      await c.cleanup();
      await lab.destroy();
    },
  };
  try {
    await start(w);
  } catch (e) {
    await w.destroy();
    throw e;
  }
  return w;
}
