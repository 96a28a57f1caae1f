/**
 * N kumo-api replicas behind a real HAProxy, as an operator runs them: each replica the
 * real `bin/kumo-api.ts` with its own config and ports, all on one database, one broker,
 * one admin token, one shared token key repository and image directory; HAProxy
 * (api-haproxy.ts, the shape of etc/haproxy-kumo-api.cfg) balancing the service API and
 * identity over them. Used by test/fullstack/api-replicas.test.ts and bench/scale.
 *
 * Invariants: every process this helper starts is stopped by `stop()` (SIGTERM, SIGKILL
 * after a grace period); each replica's output goes to its own log file under `dir`,
 * appended across restarts; replica 0 starts alone first, so the shared key repository is
 * set up by one process, then the others start together.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { showStat } from '../../host/haproxy/stats.ts';
import { renderApiHaproxy } from './api-haproxy.ts';
import {
  ADMIN_TOKEN,
  freePorts,
  MEMBER_TOKEN,
  METADATA_SECRET,
  runCommand,
  SERVICE_TOKEN,
} from './cluster.ts';
import { REPO, waitFor } from './env.ts';

export interface ApiReplica {
  url: string;
  authUrl: string;
  pid(): number | undefined;
  /** Its log file (JSON lines), appended across restarts. */
  log: string;
}

export interface ApiReplicas {
  /** HAProxy's front URL (the service API) and identity URL, both through HAProxy. */
  url: string;
  authUrl: string;
  replicas: ApiReplica[];
  /** SIGKILL, resolves once the process is gone. */
  kill(i: number): Promise<void>;
  /** Starts replica `i` again; resolves when it listens. */
  start(i: number): Promise<void>;
  /** Resolves when HAProxy has replica `i` UP in both backends. */
  waitServing(i: number, timeoutMs?: number): Promise<void>;
  /** Everything this helper started. */
  stop(): Promise<void>;
  haproxyPid(): number | undefined;
  /** HAProxy's admin socket. */
  statsSocket: string;
}

export interface ApiReplicasOptions {
  n: number;
  dir: string;
  dbConnection: string;
  transportUrl: string;
  /** [api] lease_duration in seconds (default: kumo-api's own, 15). */
  leaseSeconds?: number;
  /** [DEFAULT] agent_down_time (default 3, as the fullstack clusters). */
  agentDownTime?: number;
  /** Lines appended to every replica's config (sections of their own). */
  extraConfig?: string[];
  /** [DEFAULT] debug (default true: the tests read the debug lines; a bench may not want them). */
  debug?: boolean;
}

interface Ports {
  service: number;
  identity: number;
  metadata: number;
}

const url = (port: number) => `http://127.0.0.1:${port}`;

function replicaConfig(o: ApiReplicasOptions, i: number, own: Ports, front: Ports): string {
  const state = join(o.dir, `api-${i}`);
  mkdirSync(state, { recursive: true });
  return [
    '[DEFAULT]',
    `host = api-${i}`,
    `state_path = ${state}`,
    `transport_url = ${o.transportUrl}`,
    `agent_down_time = ${o.agentDownTime ?? 3}`,
    `debug = ${o.debug ?? true}`,
    '[api]',
    `bind_port = ${own.service}`,
    `public_endpoint = ${url(front.service)}`,
    `admin_token = ${ADMIN_TOKEN}`,
    `member_tokens = ${MEMBER_TOKEN}`,
    `service_token = ${SERVICE_TOKEN}`,
    `image_dir = ${join(o.dir, 'images')}`,
    ...(o.leaseSeconds ? [`lease_duration = ${o.leaseSeconds}`] : []),
    '[identity]',
    `bind_port = ${own.identity}`,
    `public_endpoint = ${url(front.identity)}`,
    `key_repository = ${join(o.dir, 'token-keys')}`,
    '[metadata]',
    `bind_port = ${own.metadata}`,
    `metadata_proxy_shared_secret = ${METADATA_SECRET}`,
    '[database]',
    `connection = ${o.dbConnection}`,
    ...(o.extraConfig ?? []),
    '',
  ].join('\n');
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

function spawnLogged(argv: string[], log: string): Running {
  const out = createWriteStream(log, { flags: 'a' });
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, exited };
}

const alive = (r: Running | undefined) =>
  r !== undefined && r.child.exitCode === null && r.child.signalCode === null;

async function terminate(r: Running | undefined, signal: NodeJS.Signals = 'SIGTERM') {
  if (!r || !alive(r)) return;
  r.child.kill(signal);
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 10_000);
  await r.exited;
  clearTimeout(timer);
}

/** Waits for `GET /` on `port` to answer 200; the error quotes the log if the process died. */
async function waitListening(what: string, r: Running, port: number, log: string) {
  await waitFor(
    `${what} to listen on ${port}`,
    async () => {
      if (!alive(r)) throw new Error(`${what} exited: ${readFileSync(log, 'utf8').slice(-2000)}`);
      return (await fetch(url(port)).catch(() => undefined))?.status === 200;
    },
    30_000,
    100,
  );
}

export async function startApiReplicas(o: ApiReplicasOptions): Promise<ApiReplicas> {
  mkdirSync(o.dir, { recursive: true });
  const ports = await freePorts(2 + 3 * o.n);
  const at = (k: number) => ports[k] as number;
  const front: Ports = { service: at(0), identity: at(1), metadata: 0 };
  const own: Ports[] = Array.from({ length: o.n }, (_, i) => ({
    service: at(2 + 3 * i),
    identity: at(3 + 3 * i),
    metadata: at(4 + 3 * i),
  }));
  const configs = own.map((p, i) => {
    const path = join(o.dir, `kumo-api-${i}.conf`);
    writeFileSync(path, replicaConfig(o, i, p, front));
    return path;
  });
  const logs = own.map((_, i) => join(o.dir, `kumo-api-${i}.log`));
  const procs: (Running | undefined)[] = own.map(() => undefined);
  let haproxy: Running | undefined;
  const statsSocket = join(o.dir, 'haproxy.sock');

  const start = async (i: number) => {
    if (alive(procs[i])) throw new Error(`replica ${i} runs already`);
    const argv = [process.execPath, join(REPO, 'bin', 'kumo-api.ts'), '--config-file'];
    const r = spawnLogged([...argv, configs[i] as string], logs[i] as string);
    procs[i] = r;
    await waitListening(`kumo-api replica ${i}`, r, (own[i] as Ports).service, logs[i] as string);
  };
  const stop = async () => {
    await terminate(haproxy);
    await Promise.all(procs.map((r) => terminate(r)));
  };

  const replicas = own.map((p, i) => ({
    url: url(p.service),
    authUrl: `${url(p.identity)}/v3`,
    pid: () => (alive(procs[i]) ? procs[i]?.child.pid : undefined),
    log: logs[i] as string,
  }));
  const result: ApiReplicas = {
    url: url(front.service),
    authUrl: `${url(front.identity)}/v3`,
    replicas,
    kill: (i) => terminate(procs[i], 'SIGKILL'),
    start,
    waitServing: (i, timeoutMs = 20_000) => waitServing(statsSocket, `api-${i}`, timeoutMs),
    stop,
    haproxyPid: () => (alive(haproxy) ? haproxy?.child.pid : undefined),
    statsSocket,
  };
  try {
    await start(0);
    await Promise.all(own.slice(1).map((_, k) => start(k + 1)));
    haproxy = await startHaproxy(o.dir, statsSocket, front, own);
    await Promise.all(replicas.map((_, i) => result.waitServing(i)));
  } catch (e) {
    await stop();
    throw e;
  }
  return result;
}

async function startHaproxy(
  dir: string,
  statsSocket: string,
  front: Ports,
  own: Ports[],
): Promise<Running> {
  const config = join(dir, 'haproxy-kumo-api.cfg');
  const text = renderApiHaproxy({
    serviceBind: `127.0.0.1:${front.service}`,
    identityBind: `127.0.0.1:${front.identity}`,
    replicas: own.map((p, i) => ({
      name: `api-${i}`,
      host: '127.0.0.1',
      servicePort: p.service,
      identityPort: p.identity,
    })),
    check: { interMs: 500, fall: 2, rise: 2 },
    statsSocket,
  });
  writeFileSync(config, text);
  const check = await runCommand(['haproxy', '-c', '-f', config]);
  if (check.code !== 0) throw new Error(`haproxy -c -f ${config}: ${check.stderr}${check.stdout}`);
  const log = join(dir, 'haproxy.log');
  // -db: in the foreground, so the child is HAProxy itself and SIGKILL/SIGTERM reach it.
  const r = spawnLogged(['haproxy', '-db', '-f', config], log);
  await waitListening('haproxy', r, front.service, log);
  return r;
}

/** Polls HAProxy's `show stat` until server `name` is UP in both backends. */
async function waitServing(socket: string, name: string, timeoutMs: number) {
  await waitFor(
    `HAProxy to mark ${name} UP in both backends`,
    async () => {
      const rows = (await showStat(socket)).filter((r) => r.svname === name);
      if (rows.length === 2 && rows.every((r) => r.status === 'UP')) return true;
      throw new Error(`now: ${rows.map((r) => `${r.pxname}=${r.status}`).join(', ')}`);
    },
    timeoutMs,
    100,
  );
}
