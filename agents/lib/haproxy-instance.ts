/**
 * One haproxy an agent runs inside a namespace, as data: its directory (haproxy.cfg,
 * haproxy.pid, haproxy.loaded and, when it has one, the stats socket), the rendered config
 * and the namespace. desired (HaproxyInstance) → observe (observeHaproxy) → plan
 * (haproxySteps). Shared by the metadata proxy (agents/lib/metadata-proxy.ts) and the
 * LBaaS agent's pools (agents/lbaas).
 *
 * Invariants: a running haproxy whose loaded config is already right and that lives in
 * the right namespace is never restarted nor reloaded (an agent restart adopts it through
 * the pid file); a config change is written atomically, checked with `haproxy -c`, then
 * applied by a hitless reload (`-sf <old pid>`, with `-x <stats socket>` when the instance
 * has one and the running haproxy answers on it, so the new process takes the listening
 * sockets over and no connection is refused); a haproxy living in another namespace (a
 * stale one) is replaced by one started in the right namespace without `-x` (its sockets
 * belong to the old namespace). Every start and reload follows a `haproxy -c` of the file on
 * disk, so a config that failed the check is never loaded by a later pass.
 * `haproxy.loaded` holds the digest of the config the running haproxy was started or
 * reloaded with, written only after that succeeded, so an agent that dies between writing
 * a config and reloading finds the digest stale and reloads on its next pass.
 * haproxySteps is pure; observeHaproxy only reads files, the pid file and /proc.
 */
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import {
  checkCommand,
  findHaproxy,
  type HaproxyPaths,
  haproxyExpected,
  inNetns,
  reloadCommand,
  startCommand,
} from '../../host/haproxy/daemon.ts';
import { servesSocket } from '../../host/haproxy/stats.ts';
import type { Step } from './steps.ts';

export interface HaproxyInstance {
  netns: string;
  /** The instance's directory (removed with it). */
  dir: string;
  /** The rendered haproxy.cfg. */
  config: string;
  /** The stats socket the config declares (`expose-fd listeners`): reloads use `-x`. */
  statsSocket?: string;
  /** What the log calls it ("metadata proxy", "pool haproxy"). */
  label: string;
}

export interface ObservedHaproxy {
  dir: string;
  dirExists: boolean;
  /** haproxy.cfg as on disk (null: none). */
  config: string | null;
  /** haproxy.loaded: the digest of the config the running haproxy loaded (null: none). */
  loaded: string | null;
  /** The running haproxy of this dir (null: none). */
  pid: number | null;
  /** That haproxy lives in the given namespace (false when none runs or none given). */
  inNetns: boolean;
  /**
   * That haproxy answers on the instance's stats socket, so a reload may take its listeners
   * (absent: false; instances without a socket never look).
   */
  socketServed?: boolean;
}

export const haproxyPaths = (dir: string): HaproxyPaths => ({
  config: `${dir}/haproxy.cfg`,
  pidfile: `${dir}/haproxy.pid`,
});

export const loadedPath = (dir: string) => `${dir}/haproxy.loaded`;

/** What haproxy.loaded holds for a config. */
export const configDigest = (config: string) =>
  `${createHash('sha256').update(config).digest('hex')}\n`;

const readFileOrNull = (path: string) =>
  readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** Nothing of an instance on the host. */
export const noHaproxy = (dir: string): ObservedHaproxy => ({
  dir,
  dirExists: false,
  config: null,
  loaded: null,
  pid: null,
  inNetns: false,
  socketServed: false,
});

/**
 * The instance's files and process; `netns` (when one is wanted) is compared too, and a
 * running haproxy is asked for its pid on `socket` (`show info`) when one is given.
 */
export async function observeHaproxy(
  dir: string,
  netns: string | null,
  socket?: string,
): Promise<ObservedHaproxy> {
  const paths = haproxyPaths(dir);
  const dirExists = await exists(dir);
  if (!dirExists) return noHaproxy(dir);
  const [config, loaded, pid] = await Promise.all([
    readFileOrNull(paths.config),
    readFileOrNull(loadedPath(dir)),
    findHaproxy(paths),
  ]);
  const here = pid !== null && netns !== null && (await inNetns(pid, netns));
  const served = here && socket !== undefined && (await servesSocket(socket, pid as number));
  return { dir, dirExists, config, loaded, pid, inNetns: here, socketServed: served };
}

const daemonOf = (dir: string) => {
  const paths = haproxyPaths(dir);
  return { pidfile: paths.pidfile, expected: haproxyExpected(paths), tool: 'haproxy' };
};

/** The running haproxy stopped (nothing when none runs); its files stay. */
export function haproxyStop(o: ObservedHaproxy, label: string): Step[] {
  if (o.pid === null) return [];
  return [{ kind: 'daemon', action: 'stop', daemon: daemonOf(o.dir), why: `stop the ${label}` }];
}

/** Start, or reload when the running one loaded another config or lives elsewhere. */
function runSteps(d: HaproxyInstance, o: ObservedHaproxy, digest: string, changed: boolean) {
  const paths = haproxyPaths(d.dir);
  const loaded = { kind: 'file' as const, path: loadedPath(d.dir), content: digest };
  if (o.pid === null)
    return [
      {
        kind: 'daemon' as const,
        action: 'start' as const,
        daemon: daemonOf(d.dir),
        spec: startCommand(paths, d.netns),
        why: `start the ${d.label}`,
      },
      { ...loaded, why: 'the config haproxy started with' },
    ];
  const moved = !o.inNetns;
  if (!moved && !changed && o.loaded === digest) return [];
  // -x only from an old process in this namespace serving the socket (haproxy refuses to
  // start when it cannot take the listeners; a stale namespace's listeners are not wanted).
  const served = !moved && o.socketServed === true && d.statsSocket !== undefined;
  const socket = served ? { socket: d.statsSocket } : {};
  const spec = reloadCommand({ ...paths, ...socket }, o.pid, d.netns);
  return [
    {
      kind: 'command' as const,
      spec,
      why: moved ? `${d.label} in a stale namespace` : `reload the ${d.label}`,
    },
    { ...loaded, why: 'the config haproxy reloaded' },
  ];
}

/** The haproxy stopped and its directory removed. */
export function haproxyTeardown(o: ObservedHaproxy, label: string): Step[] {
  return [
    ...haproxyStop(o, label),
    ...(o.dirExists ? [{ kind: 'remove' as const, path: o.dir, why: `${label} files` }] : []),
  ];
}

/**
 * The steps that make `o` match `desired`: its directory (0750: the stats socket's), config,
 * and a start or reload, always after `haproxy -c` (a config on disk may be one an earlier
 * pass wrote and never got past the check, or that an agent died before loading).
 */
export function haproxySteps(desired: HaproxyInstance, o: ObservedHaproxy): Step[] {
  const paths = haproxyPaths(desired.dir);
  const changed = o.config !== desired.config;
  const run = runSteps(desired, o, configDigest(desired.config), changed);
  return [
    ...(o.dirExists
      ? []
      : [{ kind: 'mkdir' as const, path: desired.dir, mode: 0o750, why: desired.label }]),
    ...(changed
      ? [{ kind: 'file' as const, path: paths.config, content: desired.config, why: 'haproxy.cfg' }]
      : []),
    ...(run.length
      ? [{ kind: 'command' as const, spec: checkCommand(paths.config), why: 'haproxy -c' }, ...run]
      : []),
  ];
}
