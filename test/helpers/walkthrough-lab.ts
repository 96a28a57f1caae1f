/**
 * The seed walkthrough's cloud (test/fullstack/walkthrough.test.ts) on the multi-host lab:
 *
 * - `ctl`: the controller and network host: kumo-api (on this machine's loopback, as every
 *   Cluster's), OVS, DHCP, L3 and LBaaS agents, br-ex linked to the outside world;
 * - `cp1`: a compute host: OVS and compute agents;
 * - `cp2`: a compute host that is also the second network host (OVS, compute, DHCP, L3,
 *   LBaaS agents, br-ex linked outside), where each network service fails over to.
 *
 * The outside world is the lab's namespace holding 172.24.4.1/24, public-subnet's gateway.
 * After the agents, it runs stack.sh's own steps from tools/stack-steps.sh against this cloud, with
 * KUMO_ETC in the cluster's directory: users `admin` and `demo` bootstrapped with generated
 * passwords, openrc and clouds.yaml written, devstack's initial networks (`public`,
 * `private`, `router1`) and the `cirros-like` images. Every CLI call then logs in through
 * that openrc, as an operator after `source openrc demo demo`.
 *
 * Invariant: everything it starts goes with `destroy()` — the Cluster's processes, domains,
 * qdhcp and qrouter namespaces (Cluster.cleanup), the qlbaas namespaces with their
 * haproxies, and the lab; traffic stays in the lab's namespaces.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Cluster, ovsOf, type Proc, runCommand } from './cluster.ts';
import { REPO, waitFor } from './env.ts';
import { createLab, type Lab, type LabHost } from './lab.ts';
import { removePoolNamespaces } from './lbaas-lab.ts';
import { ok } from './os-clients.ts';
import { type Where, whereOf } from './walkthrough-where.ts';

export const OUTSIDE_CIDR = '172.24.4.1/24';
/**
 * Heartbeats every second, an agent dead after 10 s: failover comes within seconds, yet
 * two TCG guests booting on this machine's two cores cannot make a live agent miss enough
 * reports to be taken for dead.
 */
export const TIMING = { reportInterval: 1, agentDownTime: 10 };

type Kind = 'ovs' | 'dhcp' | 'l3' | 'lbaas' | 'compute';
export type User = 'admin' | 'demo';

/** What runs where (the module header). */
const ROLES: Record<'ctl' | 'cp1' | 'cp2', Kind[]> = {
  ctl: ['ovs', 'dhcp', 'l3', 'lbaas'],
  cp1: ['ovs', 'compute'],
  cp2: ['ovs', 'compute', 'dhcp', 'l3', 'lbaas'],
};

export interface Walkthrough {
  lab: Lab;
  c: Cluster;
  /** The outside world's namespace. */
  outside: string;
  hosts: { ctl: LabHost; cp1: LabHost; cp2: LabHost };
  /** The host name its agents report (8 characters: haproxy's socket paths stay short). */
  hostName(h: LabHost): string;
  /** A namespace an agent of `host` (a reported host name) made, e.g. `qdhcp-<id>`. */
  netnsOn(host: string, name: string): string;
  /**
   * `openstack <command> <args>` after `source openrc <user> <user>` (`command`: words split
   * at spaces, `args` passed as they are); fails with its stderr.
   */
  os(user: User, command: string, ...args: string[]): Promise<string>;
  osJson<T>(user: User, command: string, ...args: string[]): Promise<T>;
  /** `neutron <command> <args>` as `os` runs openstack. */
  neutron(user: User, command: string, ...args: string[]): Promise<string>;
  /** The agent process of `kind` on a reported host name. */
  agent(kind: Kind, host: string): Proc;
  /** What hosts what, and whether an old copy is fenced (walkthrough-where.ts). */
  where: Where;
  /** The network host (ctl or cp2, by reported name) that is not `host`. */
  otherNetworkHost(host: string): string | undefined;
  destroy(): Promise<void>;
}

/** PATH with this Node first and `kumo-manage` in `bin` (stack.sh links it into /usr/local/bin). */
function toolPath(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(join(REPO, 'bin', 'kumo-manage.ts'), join(bin, 'kumo-manage'));
  return [bin, dirname(process.execPath), process.env.PATH ?? '/usr/bin:/bin'].join(':');
}

/** stack.sh's steps after the daemons run (tools/stack-steps.sh), on this cloud. */
async function stackSteps(c: Cluster, etc: string, path: string) {
  const script = [
    'set -euo pipefail',
    'source "$1/tools/lib.sh"',
    'source "$1/tools/stack-steps.sh"',
    'conf=$2',
    'kumo_wait_identity "$conf"',
    'kumo_bootstrap_user "$conf" admin admin admin',
    'kumo_bootstrap_user "$conf" demo demo member',
    'kumo_write_credentials "$conf"',
    'kumo_initial_networks',
    'kumo_guest_images',
  ].join('\n');
  const env = { PATH: path, KUMO_ETC: etc, KUMO_GUEST_DIR: join(tmpdir(), 'kumo-test-guest') };
  ok(
    await runCommand(['bash', '-c', script, 'stack', REPO, c.configPath], env, 300_000),
    'stack steps',
  );
}

async function startAgents(lab: Lab, c: Cluster, name: (h: LabHost) => string) {
  const [ctl, cp1, cp2] = lab.hosts as [LabHost, LabHost, LabHost];
  const hosts = { ctl, cp1, cp2 };
  await c.startApi();
  for (const [role, kinds] of Object.entries(ROLES)) {
    const h = hosts[role as keyof typeof hosts];
    const network = kinds.includes('l3');
    if (network) await lab.connectOutside(h);
    // A network host's lines: its physnet on br-ex, its LBaaS agent's stats every second.
    const extra = network
      ? ['[ovs]', 'bridge_mappings = public:br-ex', '[lbaas]', 'stats_interval = 1']
      : [];
    for (const kind of kinds) {
      c.startAgentOn(kind, name(h), ovsOf(h), extra);
    }
  }
  const expected = Object.values(ROLES).flat().length;
  await waitFor(
    `all ${expected} agents alive`,
    async () => {
      const res = await c.http('GET', '/v2.0/agents?alive=true');
      return (res.body as { agents: unknown[] }).agents.length === expected;
    },
    60_000,
    300,
  );
  return hosts;
}

/** Builds the cloud; resolves once stack.sh's steps have run. */
export async function buildWalkthrough(): Promise<Walkthrough> {
  const lab = await createLab({ hosts: 3 });
  let c: Cluster | undefined;
  const names = ['ctl', 'cp1', 'cp2'];
  const hostName = (h: LabHost) =>
    `${lab.prefix.slice(2)}-${names[lab.hosts.indexOf(h)] ?? h.name}`;
  // Each step runs even when one before it failed: nothing of the lab may outlive it.
  const destroy = async () => {
    try {
      await c?.cleanup();
    } finally {
      try {
        await removePoolNamespaces(lab.hosts.map((h) => `${hostName(h)}-`));
      } finally {
        await lab.destroy();
      }
    }
  };
  try {
    const outside = (await lab.outside([OUTSIDE_CIDR])).netns;
    c = await Cluster.create('sqlite', undefined, [], TIMING);
    const cl = c;
    const hosts = await startAgents(lab, cl, hostName);
    const etc = join(cl.dir.path, 'etc');
    mkdirSync(etc, { mode: 0o700 });
    const path = toolPath(cl.dir.path);
    await stackSteps(cl, etc, path);
    const cli = async (user: User, argv: string[]) => {
      const line = 'source "$0" "$1" "$1" && shift && exec "$@"';
      const r = await runCommand(['bash', '-c', line, join(etc, 'openrc'), user, ...argv], {
        PATH: path,
      });
      return ok(r, `${user}: ${argv.join(' ')}`);
    };
    return {
      lab,
      c: cl,
      outside,
      hosts,
      hostName,
      netnsOn: (host, name) => `${host.slice(-8)}-${name}`,
      os: (user, command, ...args) => cli(user, ['openstack', ...command.split(' '), ...args]),
      osJson: async <T>(user: User, command: string, ...args: string[]) =>
        JSON.parse(
          await cli(user, ['openstack', ...command.split(' '), ...args, '-f', 'json']),
        ) as T,
      neutron: (user, command, ...args) => cli(user, ['neutron', ...command.split(' '), ...args]),
      agent(kind, host) {
        const p = cl.hostAgents.get(`${kind}@${host}`);
        if (!p) throw new Error(`no ${kind} agent on ${host}`);
        return p;
      },
      where: whereOf(cl, (host) => {
        const h = lab.hosts.find((x) => hostName(x) === host);
        if (!h) throw new Error(`no lab host named ${host}`);
        return h;
      }),
      otherNetworkHost: (host) => [hosts.ctl, hosts.cp2].map(hostName).find((h) => h !== host),
      destroy,
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}
