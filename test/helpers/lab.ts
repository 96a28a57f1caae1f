/**
 * The multi-host lab (HOST-LAB.md): N simulated hosts on this machine, each a network
 * namespace with its own ovsdb-server and ovs-vswitchd (userspace datapath), joined by
 * veths to a Linux bridge in an "underlay" namespace. Endpoints standing in for VMs are
 * OVS internal ports with an iface-id, moved into namespaces of their own.
 *
 * Invariants: every namespace, daemon and directory the lab makes carries its unique
 * prefix and is removed by `destroy()`, also after a failed test; addresses exist only
 * inside namespaces the lab created (underlay 10.250.0.0/24, the outside world's
 * 203.0.113.0/24), so no traffic leaves them.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './env.ts';
import { type Outside, outsideWorld } from './lab-outside.ts';

export interface LabHost {
  name: string;
  netns: string;
  dir: string;
  /** Tunnel endpoint address on br-phy. */
  ip: string;
  dbSocket: string;
  vsctl(args: string[]): Promise<string>;
  ofctl(args: string[]): Promise<string>;
}

export interface Endpoint {
  name: string;
  netns: string;
  host: LabHost;
  ip: string;
  mac: string;
}

export interface Lab {
  prefix: string;
  underlay: string;
  hosts: LabHost[];
  addHost(): Promise<LabHost>;
  removeHost(host: LabHost): Promise<void>;
  /** `cidr` omitted: no address (a DHCP client will get one). */
  endpoint(
    host: LabHost,
    opts: { ifaceId: string; mac: string; cidr?: string; bridge?: string },
  ): Promise<Endpoint>;
  /**
   * The outside world (lab-outside.ts): namespace `<prefix>-out` with bridge br-out holding
   * `cidrs` (default 203.0.113.1/24, the external subnet's gateway); callable again to add
   * addresses.
   */
  outside(cidrs?: readonly string[]): Promise<Outside>;
  /** A veth from `host`'s `bridge` (made netdev when missing) to br-out; the host end's name. */
  connectOutside(host: LabHost, bridge?: string): Promise<string>;
  /** Runs a command in a namespace; resolves with stdout, rejects with stderr. */
  exec(netns: string, argv: string[], env?: Record<string, string>): Promise<string>;
  destroy(): Promise<void>;
}

function run(argv: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      argv[0] as string,
      argv.slice(1),
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${argv.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

const inNs = (netns: string, argv: string[]) => ['ip', 'netns', 'exec', netns, ...argv];

export async function createLab(opts: { hosts: number }): Promise<Lab> {
  const prefix = `kl${randomBytes(2).toString('hex')}`;
  const base = join(tmpdir(), `kumo-lab-${prefix}`);
  const underlay = `${prefix}-u`;
  const hosts: LabHost[] = [];
  const endpoints: Endpoint[] = [];
  let next = 1;
  mkdirSync(base, { recursive: true });
  await run(['ip', 'netns', 'add', underlay]);
  await run(inNs(underlay, ['ip', 'link', 'add', 'br-u', 'type', 'bridge']));
  await run(inNs(underlay, ['ip', 'link', 'set', 'br-u', 'up']));

  const exec = (netns: string, argv: string[], env: Record<string, string> = {}) =>
    run(inNs(netns, argv), env);
  const world = outsideWorld(prefix, run, exec);

  const addHost = async (): Promise<LabHost> => {
    const i = next++;
    const host = await startHost({ prefix, base, underlay, index: i, exec });
    hosts.push(host);
    return host;
  };

  const lab: Lab = {
    prefix,
    underlay,
    hosts,
    addHost,
    async removeHost(host) {
      await stopHost(host, underlay);
      hosts.splice(hosts.indexOf(host), 1);
    },
    async endpoint(host, o) {
      const ep = await addEndpoint(host, o, endpoints.length + 1, prefix, exec);
      endpoints.push(ep);
      return ep;
    },
    outside: (cidrs = ['203.0.113.1/24']) => world.create(cidrs),
    connectOutside: (host, bridge = 'br-ex') => world.connect(host, bridge),
    exec,
    async destroy() {
      await world.destroy();
      for (const ep of endpoints) await run(['ip', 'netns', 'del', ep.netns]).catch(() => {});
      for (const h of [...hosts]) await stopHost(h, underlay).catch(() => {});
      await run(['ip', 'netns', 'del', underlay]).catch(() => {});
      rmSync(base, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < opts.hosts; i++) await addHost();
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}

interface HostParams {
  prefix: string;
  base: string;
  underlay: string;
  index: number;
  exec: Lab['exec'];
}

async function startHost({ prefix, base, underlay, index, exec }: HostParams): Promise<LabHost> {
  const name = `h${index}`;
  const netns = `${prefix}-${name}`;
  const dir = join(base, name);
  const dbSocket = join(dir, 'db.sock');
  const env = { OVS_RUNDIR: dir, OVS_LOGDIR: dir, OVS_DBDIR: dir };
  const ip = `10.250.0.${index}`;
  mkdirSync(dir, { recursive: true });
  await run(['ip', 'netns', 'add', netns]);
  await exec(netns, ['ip', 'link', 'set', 'lo', 'up']);
  await run([
    'ovsdb-tool',
    'create',
    join(dir, 'conf.db'),
    '/usr/share/openvswitch/vswitch.ovsschema',
  ]);
  await exec(
    netns,
    [
      'ovsdb-server',
      join(dir, 'conf.db'),
      `--remote=punix:${dbSocket}`,
      `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
      `--unixctl=${join(dir, 'ovsdb-server.ctl')}`,
      `--log-file=${join(dir, 'ovsdb-server.log')}`,
      '--detach',
    ],
    env,
  );
  const vsctl = (args: string[]) =>
    run(['ovs-vsctl', `--db=unix:${dbSocket}`, '--timeout=10', ...args], env);
  await vsctl(['--no-wait', 'init']);
  await exec(
    netns,
    [
      'ovs-vswitchd',
      `unix:${dbSocket}`,
      `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`,
      `--unixctl=${join(dir, 'ovs-vswitchd.ctl')}`,
      `--log-file=${join(dir, 'ovs-vswitchd.log')}`,
      '--detach',
    ],
    env,
  );
  const veth = `${prefix}${name}`;
  await run([
    'ip',
    'link',
    'add',
    'eth-u',
    'netns',
    netns,
    'type',
    'veth',
    'peer',
    'name',
    veth,
    'netns',
    underlay,
  ]);
  await exec(underlay, ['ip', 'link', 'set', veth, 'master', 'br-u', 'up']);
  await exec(netns, ['ip', 'link', 'set', 'eth-u', 'up']);
  const mac = `02:00:0a:fa:00:${index.toString(16).padStart(2, '0')}`;
  await vsctl([
    'add-br',
    'br-phy',
    '--',
    'set',
    'bridge',
    'br-phy',
    'datapath_type=netdev',
    `other_config:hwaddr=${mac}`,
    '--',
    'add-port',
    'br-phy',
    'eth-u',
  ]);
  await exec(netns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'br-phy']);
  await exec(netns, ['ip', 'link', 'set', 'br-phy', 'up']);
  return {
    name,
    netns,
    dir,
    ip,
    dbSocket,
    vsctl,
    ofctl: (args) => run(['ovs-ofctl', ...args], env),
  };
}

async function stopHost(host: LabHost, underlay: string) {
  for (const daemon of ['ovs-vswitchd', 'ovsdb-server']) {
    await run(['ovs-appctl', '-t', join(host.dir, `${daemon}.ctl`), 'exit']).catch(() => {});
  }
  await run(['ip', 'netns', 'del', host.netns]).catch(() => {});
  await run(inNs(underlay, ['ip', 'link', 'del', `${host.netns.split('-')[0]}${host.name}`])).catch(
    () => {},
  );
}

/**
 * Waits (up to 30 s) for `bridge` on `host`: br-int is made by the host's OVS agent, which
 * a test may have started a moment before it plugs an endpoint in.
 */
function bridgeMade(host: LabHost, bridge: string) {
  const exists = () =>
    host.vsctl(['br-exists', bridge]).then(
      () => true,
      () => false,
    );
  return waitFor(`bridge ${bridge} on ${host.name}`, exists, 30_000);
}

async function addEndpoint(
  host: LabHost,
  o: { ifaceId: string; mac: string; cidr?: string; bridge?: string },
  index: number,
  prefix: string,
  exec: Lab['exec'],
): Promise<Endpoint> {
  const name = `ep${index}`;
  const netns = `${prefix}-${name}`;
  const bridge = o.bridge ?? 'br-int';
  await bridgeMade(host, bridge);
  await host.vsctl([
    'add-port',
    bridge,
    name,
    '--',
    'set',
    'Interface',
    name,
    'type=internal',
    `external_ids:iface-id=${o.ifaceId}`,
    `external_ids:attached-mac=${o.mac}`,
    'external_ids:iface-status=active',
  ]);
  await run(['ip', 'netns', 'add', netns]);
  await exec(host.netns, ['ip', 'link', 'set', name, 'netns', netns]);
  await exec(netns, ['ip', 'link', 'set', name, 'address', o.mac]);
  await exec(netns, ['ip', 'link', 'set', name, 'mtu', '1400']);
  if (o.cidr) await exec(netns, ['ip', 'addr', 'add', o.cidr, 'dev', name]);
  await exec(netns, ['ip', 'link', 'set', name, 'up']);
  await exec(netns, ['ip', 'link', 'set', 'lo', 'up']);
  return { name, netns, host, ip: o.cidr?.split('/')[0] ?? '', mac: o.mac };
}

/** Writes the udhcpc event script `dhcpLease` needs into `dir`; returns its path. */
export function writeUdhcpcScript(dir: string): string {
  const path = join(dir, 'udhcpc.sh');
  writeFileSync(
    path,
    '#!/bin/sh\n[ "$1" = bound ] && echo "bound ip=$ip router=$router dns=$dns serverid=$serverid"\nexit 0\n',
  );
  chmodSync(path, 0o755);
  return path;
}

/** One DHCP exchange with busybox udhcpc on an endpoint (`tries` discovers a second apart,
 * default 4); resolves with what its script saw (`ip`, `router`, `dns`, `serverid`);
 * rejects when no lease came. */
export async function dhcpLease(
  lab: Lab,
  e: Endpoint,
  script: string,
  tries = 4,
): Promise<Record<string, string>> {
  const argv = [
    'busybox',
    'udhcpc',
    '-i',
    e.name,
    '-n',
    '-q',
    '-f',
    '-t',
    String(tries),
    '-T',
    '1',
  ];
  const out = await lab.exec(e.netns, [...argv, '-s', script]);
  const line = out.split('\n').find((l) => l.startsWith('bound ')) ?? '';
  return Object.fromEntries(
    line
      .slice(6)
      .split(' ')
      .map((kv) => kv.split('=') as [string, string]),
  );
}
