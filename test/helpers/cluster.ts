/**
 * A real Kumo deployment for fullstack tests: kumo-api and the six agents as separate
 * processes on one simulated host, against a fresh vhost and database.
 *
 * Invariant: every process this helper starts is stopped by `cleanup()` (SIGKILL after a
 * grace period), and every process's output lands in a log file under the temp dir so a
 * failing test can be read afterwards.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { proxyPaths } from '../../agents/lib/metadata-proxy.ts';
import { AGENT_KINDS, type Agent, type AgentKind } from '../../contracts/agents.ts';
import { haproxyExpected } from '../../host/haproxy/daemon.ts';
import { stopByPidfile } from '../../host/process/daemon.ts';
import {
  REPO,
  rabbitVhost,
  type TestDatabase,
  tempDir,
  testDatabase,
  type Vhost,
  waitFor,
} from './env.ts';

export const ADMIN_TOKEN = 'admin-token-for-tests';
/** `[metadata] metadata_proxy_shared_secret` of every cluster's API and agents. */
export const METADATA_SECRET = 'metadata-secret-for-tests';
export const SERVICE_TOKEN = 'service-token-for-tests';
export const MEMBER_TOKEN = 'member-token-for-tests';
export const REPORT_INTERVAL = 1;
export const AGENT_DOWN_TIME = 3;
export const RESYNC_INTERVAL = 3;

/** Liveness timing of a cluster's config ([agent] report_interval, [DEFAULT] agent_down_time). */
export interface ClusterTiming {
  reportInterval: number;
  agentDownTime: number;
}

export interface Proc {
  child: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
}

/** How an agent reaches a host's Open vSwitch. */
export interface OvsEndpoint {
  dbSocket: string;
  rundir: string;
  localIp: string;
  /** The namespace ovs-vswitchd runs in (a lab host's). */
  netns?: string;
}

const NO_OVS: OvsEndpoint = {
  dbSocket: '/nonexistent/db.sock',
  rundir: '/nonexistent',
  localIp: '192.0.2.10',
};

export const ovsOf = (h: {
  dbSocket: string;
  dir: string;
  ip: string;
  netns: string;
}): OvsEndpoint => ({
  dbSocket: h.dbSocket,
  rundir: h.dir,
  localIp: h.ip,
  netns: h.netns,
});

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `n` distinct free ports: each listener stays open until all are chosen. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const srv = createServer();
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => {
    const addr = srv.address();
    if (typeof addr !== 'object' || !addr) throw new Error('no port');
    return addr.port;
  });
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

/** A base port with `n` consecutive free ports ([DEFAULT] metrics_port plus offsets). */
export async function freePortRange(n: number): Promise<number> {
  const bind = (port: number) =>
    new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(undefined));
      srv.listen(port, '127.0.0.1', () => resolve(srv));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const servers = await Promise.all(Array.from({ length: n }, (_, i) => bind(base + i)));
    await Promise.all(servers.map((srv) => srv && new Promise((r) => srv.close(r))));
    if (servers.every(Boolean)) return base;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

export function runCommand(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      argv[0] as string,
      argv.slice(1),
      { env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

/** An agent state root's per-resource directories (not its relay socket `metadata_proxy`). */
const resourceDirs = (root: string): string[] =>
  existsSync(root)
    ? readdirSync(root, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
    : [];

/** The metadata haproxy of a router's or network's state directory, if one runs. */
async function stopMetadataProxy(stateDir: string) {
  const proxy = proxyPaths(join(stateDir, 'metadata-proxy'));
  await stopByPidfile(proxy.pidfile, haproxyExpected(proxy), { graceMs: 1000 });
}

export class Cluster {
  readonly dir = tempDir('kumo-fullstack-');
  readonly vhost: Vhost;
  readonly db: TestDatabase;
  readonly host = `fs-${process.pid}`;
  readonly configPath: string;
  readonly port: number;
  /** The identity listener's port ([identity] bind_port). */
  readonly identityPort: number;
  /** kumo-api's metadata listener ([metadata] bind_port = the agents' nova_metadata_port). */
  readonly metadataPort: number;
  private readonly extraConfig: readonly string[];
  readonly timing: ClusterTiming;
  api?: Proc;
  readonly agents = new Map<AgentKind, Proc>();
  /** Agents of other hosts, by `<kind>@<host>`. */
  readonly hostAgents = new Map<string, Proc>();
  readonly ovs: OvsEndpoint;

  private constructor(
    engine: 'sqlite' | 'postgres',
    ports: { api: number; identity: number; metadata: number },
    ovs: OvsEndpoint,
    extraConfig: readonly string[] = [],
    timing: ClusterTiming = { reportInterval: REPORT_INTERVAL, agentDownTime: AGENT_DOWN_TIME },
    vhost: Vhost = rabbitVhost(),
  ) {
    this.vhost = vhost;
    this.extraConfig = extraConfig;
    this.timing = timing;
    // dnsmasq re-reads its files as `nobody` on SIGHUP: the state path must be traversable.
    chmodSync(this.dir.path, 0o755);
    this.db = testDatabase(engine, this.dir.path);
    this.port = ports.api;
    this.identityPort = ports.identity;
    this.metadataPort = ports.metadata;
    this.ovs = ovs;
    this.configPath = join(this.dir.path, 'kumo.conf');
    writeFileSync(this.configPath, this.configText());
  }

  /**
   * `ovs`: where this cluster's own host keeps OVS (a lab host; see helpers/lab.ts).
   * Clusters that start no OVS agent may leave it out.
   */
  static async create(
    engine: 'sqlite' | 'postgres',
    ovs: OvsEndpoint = NO_OVS,
    /** Lines appended to kumo-api's config (sections of their own, e.g. [keystone_authtoken]). */
    extraConfig: readonly string[] = [],
    /** Default: REPORT_INTERVAL and AGENT_DOWN_TIME (the L3 failover bench sets its own). */
    timing?: ClusterTiming,
    /** Default: a fresh vhost on the machine's broker (another broker: e.g. helpers/rabbit-cluster.ts). */
    vhost?: Vhost,
  ): Promise<Cluster> {
    const [api, identity, metadata] = (await freePorts(3)) as [number, number, number];
    const ports = { api, identity, metadata };
    return new Cluster(engine, ports, ovs, extraConfig, timing, vhost);
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Keystone v3's URL (OS_AUTH_URL). */
  get authUrl() {
    return `http://127.0.0.1:${this.identityPort}/v3`;
  }

  private configText(
    host = this.host,
    ovs: OvsEndpoint = this.ovs,
    own?: { statePath: string; netnsPrefix: string },
  ) {
    return [
      '[DEFAULT]',
      `host = ${host}`,
      `state_path = ${own?.statePath ?? this.dir.path}`,
      ...(own ? [`netns_prefix = ${own.netnsPrefix}`] : []),
      `transport_url = ${this.vhost.transportUrl}`,
      `agent_down_time = ${this.timing.agentDownTime}`,
      'debug = true',
      '[agent]',
      `report_interval = ${this.timing.reportInterval}`,
      'tunnel_types = vxlan,gre',
      `resync_interval = ${RESYNC_INTERVAL}`,
      '[api]',
      `bind_port = ${this.port}`,
      `admin_token = ${ADMIN_TOKEN}`,
      `member_tokens = ${MEMBER_TOKEN}`,
      `service_token = ${SERVICE_TOKEN}`,
      '[identity]',
      `bind_port = ${this.identityPort}`,
      '[metadata]',
      `bind_port = ${this.metadataPort}`,
      `metadata_proxy_shared_secret = ${METADATA_SECRET}`,
      `nova_metadata_port = ${this.metadataPort}`,
      '[database]',
      `connection = ${this.db.connection}`,
      '[ovs]',
      'datapath_type = netdev',
      `local_ip = ${ovs.localIp}`,
      `ovsdb_connection = unix:${ovs.dbSocket}`,
      `ovs_rundir = ${ovs.rundir}`,
      ...(ovs.netns ? [`vswitchd_netns = ${ovs.netns}`] : []),
      '[compute]',
      'virt_type = qemu',
      `instances_path = ${own?.statePath ?? this.dir.path}/instances`,
      `api_url = ${this.url}`,
      'reserved_host_memory_mb = 0',
      'vif_plugging_timeout = 60',
      'shutdown_timeout = 2',
      ...(own ? [] : this.extraConfig),
      '',
    ].join('\n');
  }

  /**
   * Starts an agent for another (lab) host, with its own config file and log. `extra`:
   * lines appended to that host's config (a section repeated there is merged, e.g.
   * `['[ovs]', 'bridge_mappings = public:br-ex']`).
   */
  startAgentOn(
    kind: AgentKind,
    host: string,
    ovs: OvsEndpoint,
    extra: readonly string[] = [],
  ): Proc {
    // One file per agent process: starting the host's next agent never rewrites the
    // config of one still reading it.
    const path = join(this.dir.path, `kumo-${kind}-agent-${host}.conf`);
    // A simulated host keeps its own state and names its namespaces apart.
    const statePath = join(this.dir.path, 'hosts', host);
    mkdirSync(statePath, { recursive: true, mode: 0o755 });
    writeFileSync(
      path,
      [
        this.configText(host, ovs, { statePath, netnsPrefix: `${host.slice(-8)}-` }),
        ...extra,
        '',
      ].join('\n'),
    );
    const proc = this.spawn(`kumo-${kind}-agent-${host}`, `kumo-${kind}-agent`, path);
    this.hostAgents.set(`${kind}@${host}`, proc);
    return proc;
  }

  private spawn(name: string, bin: string, configPath = this.configPath): Proc {
    const logPath = join(this.dir.path, `${name}.log`);
    const out = createWriteStream(logPath, { flags: 'a' });
    const child = spawn(
      process.execPath,
      [join(REPO, 'bin', `${bin}.ts`), '--config-file', configPath],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    return { child, logPath, exited };
  }

  log(name: string): string {
    return readFileSync(join(this.dir.path, `${name}.log`), 'utf8');
  }

  /** Starts kumo-api; if it exits first (a port taken meanwhile …) the timeout quotes its log. */
  async startApi() {
    const api = this.spawn('kumo-api', 'kumo-api');
    this.api = api;
    let code: number | null | undefined;
    void api.exited.then((c) => {
      code = c;
    });
    await waitFor(
      'kumo-api to listen',
      async () => {
        if (code !== undefined)
          throw new Error(`kumo-api exited ${code}: ${this.log('kumo-api').slice(-2000)}`);
        return (await this.http('GET', '/')).status === 200;
      },
      20_000,
    );
  }

  startAgent(kind: AgentKind): Proc {
    const proc = this.spawn(`kumo-${kind}-agent`, `kumo-${kind}-agent`);
    this.agents.set(kind, proc);
    return proc;
  }

  async startAll() {
    await this.startApi();
    for (const kind of AGENT_KINDS) this.startAgent(kind);
    await this.waitAgents(
      'all six agents alive',
      (agents) => agents.length === 6 && agents.every((a) => a.alive),
    );
  }

  async http(method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN) {
    const headers: Record<string, string> = {};
    if (token !== null) headers['x-auth-token'] = token;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : null,
    };
  }

  async agentList(): Promise<Agent[]> {
    const res = await this.http('GET', `/v2.0/agents?host=${this.host}`);
    return (res.body as { agents: Agent[] }).agents;
  }

  async agentOf(kind: AgentKind): Promise<Agent> {
    const binary = `kumo-${kind}-agent`;
    const agent = (await this.agentList()).find((a) => a.binary === binary);
    if (!agent) throw new Error(`no ${binary} row`);
    return agent;
  }

  waitAgents(what: string, pred: (agents: Agent[]) => boolean, timeoutMs = 30_000) {
    return waitFor(what, async () => pred(await this.agentList()), timeoutMs, 200);
  }

  /** The real `kumo` CLI as a process. */
  kumo(args: string[]): Promise<RunResult> {
    return runCommand([process.execPath, join(REPO, 'bin', 'kumo.ts'), ...args], {
      KUMO_URL: this.url,
      KUMO_TOKEN: ADMIN_TOKEN,
    });
  }

  /** The real `kumo-manage` with this cluster's config (bootstrap, token keys). */
  manage(args: string[]): Promise<RunResult> {
    return runCommand([
      process.execPath,
      join(REPO, 'bin', 'kumo-manage.ts'),
      '--config-file',
      this.configPath,
      ...args,
    ]);
  }

  /** `kumo-manage bootstrap`: the user, its project and its role, with `password`. */
  async bootstrap(user: string, project: string, role: string, password: string) {
    const file = join(this.dir.path, `password-${user}`);
    writeFileSync(file, password, { mode: 0o600 });
    const args = ['--user', user, '--project', project, '--role', role, '--password-file', file];
    const r = await this.manage(['bootstrap', ...args]);
    if (r.code !== 0) throw new Error(`kumo-manage bootstrap ${user}: ${r.stderr}`);
  }

  /** Debian's openstack client, token auth against kumo-api. */
  openstack(args: string[]): Promise<RunResult> {
    const auth = [
      '--os-auth-type',
      'admin_token',
      '--os-endpoint',
      this.url,
      '--os-token',
      ADMIN_TOKEN,
    ];
    return runCommand(['openstack', ...auth, ...args]);
  }

  async stop(proc: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null)
      return proc?.child.exitCode ?? null;
    proc.child.kill(signal);
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 15_000);
    const code = await proc.exited;
    clearTimeout(timer);
    return code;
  }

  /** Every state directory `agent` (dhcp, l3) wrote, with the netns prefix of its host. */
  private stateRoots(agent: string): [string, string][] {
    const hosts = join(this.dir.path, 'hosts');
    return [
      [join(this.dir.path, agent), ''],
      ...(existsSync(hosts) ? readdirSync(hosts) : []).map((host): [string, string] => [
        join(hosts, host, agent),
        `${host.slice(-8)}-`,
      ]),
    ];
  }

  /**
   * dnsmasq processes, metadata haproxies and qdhcp namespaces outlive their agents by
   * design; a test's own are found through the state directories its DHCP agents wrote, and
   * removed.
   */
  private async removeDhcpLeftovers() {
    for (const [root, prefix] of this.stateRoots('dhcp')) {
      for (const id of resourceDirs(root)) {
        const pidfile = join(root, id, 'pid');
        const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8').trim()) : 0;
        const cmdline =
          pid > 1 && existsSync(`/proc/${pid}/cmdline`)
            ? readFileSync(`/proc/${pid}/cmdline`, 'utf8')
            : '';
        if (cmdline.includes(pidfile)) process.kill(pid, 'SIGKILL');
        await stopMetadataProxy(join(root, id));
        await runCommand(['ip', 'netns', 'del', `${prefix}qdhcp-${id}`]);
      }
    }
  }

  /**
   * qrouter namespaces and their metadata haproxies outlive their L3 agents by design:
   * those of this cluster's routers (found by their state directories and pid files).
   */
  private async removeL3Leftovers() {
    for (const [root, prefix] of this.stateRoots('l3'))
      for (const id of resourceDirs(root)) {
        await stopMetadataProxy(join(root, id));
        await runCommand(['ip', 'netns', 'del', `${prefix}qrouter-${id}`]);
      }
  }

  /** Libvirt domains outlive their agents by design; this cluster's are those whose
   * files lie under its directory. */
  private async removeComputeLeftovers() {
    const virsh = (...args: string[]) => runCommand(['virsh', '-c', 'qemu:///system', ...args]);
    const list = await virsh('list', '--all', '--name');
    for (const name of list.stdout.split('\n').filter((n) => n.startsWith('instance-'))) {
      const xml = await virsh('dumpxml', name);
      if (!xml.stdout.includes(this.dir.path)) continue;
      await virsh('destroy', name);
      await virsh('undefine', '--managed-save', name);
    }
  }

  async cleanup() {
    await Promise.all(
      [...this.agents.values(), ...this.hostAgents.values()].map((p) => this.stop(p)),
    );
    await this.stop(this.api);
    await this.removeDhcpLeftovers();
    await this.removeL3Leftovers();
    await this.removeComputeLeftovers();
    this.vhost.cleanup();
    this.db.cleanup();
    if (!process.env.KUMO_KEEP_TEST_DIRS) this.dir.cleanup();
  }
}
