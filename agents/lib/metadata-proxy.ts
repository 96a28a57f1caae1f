/**
 * One namespace's metadata proxy as data: an haproxy in the qrouter or qdhcp namespace
 * that listens on `bind`, strips every header a guest could forge (META_HEADERS, Forwarded,
 * X-Forwarded-*, X-Kumo-*, X-Instance-ID*, X-Metadata-Provider*), adds the router's or
 * network's id and `X-Forwarded-For` from the connection's source address, and forwards over
 * the agent's relay socket. desired (ProxySpec) → observe (observeProxy) → plan (proxySteps).
 *
 * Invariants: the proxy's files live in `dir` only (haproxy.cfg, haproxy.pid,
 * haproxy.loaded), so a null desired state stops the haproxy and removes `dir` and nothing
 * is left behind; a running haproxy whose loaded config is already right and that lives in
 * the right namespace is never restarted (an agent restart adopts it through the pid
 * file); a config change is written atomically, checked with `haproxy -c`, then applied by
 * a hitless reload (`-sf`). `haproxy.loaded` holds the digest of the config the running
 * haproxy was started or reloaded with, written only after that succeeded, so an agent that
 * dies between writing a config and reloading finds the digest stale and reloads on its
 * next pass (the config on disk alone cannot tell). proxySteps is pure.
 */
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { META_HEADERS } from '../../contracts/metadata.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { type HttpRequestRule, renderConfig } from '../../host/haproxy/config.ts';
import {
  checkCommand,
  findHaproxy,
  type HaproxyPaths,
  haproxyExpected,
  inNetns,
  reloadCommand,
  startCommand,
} from '../../host/haproxy/daemon.ts';
import type { Step } from './steps.ts';

export interface ProxySpec {
  netns: string;
  /** This proxy's state directory (its config and pid file; removed with the proxy). */
  dir: string;
  bind: { address: string; port: number };
  header: { name: 'X-Kumo-Router-ID' | 'X-Kumo-Network-ID'; value: string };
  /** The relay's unix socket. */
  socket: string;
}

export interface ObservedProxy {
  dir: string;
  dirExists: boolean;
  /** haproxy.cfg as on disk (null: none). */
  config: string | null;
  /** haproxy.loaded: the digest of the config the running haproxy loaded (null: none). */
  loaded: string | null;
  /** The running haproxy of this dir (null: none). */
  pid: number | null;
  /** That haproxy lives in the spec's namespace (false when none runs or no spec given). */
  inNetns: boolean;
}

export const proxyPaths = (dir: string): HaproxyPaths => ({
  config: `${dir}/haproxy.cfg`,
  pidfile: `${dir}/haproxy.pid`,
});

const loadedPath = (dir: string) => `${dir}/haproxy.loaded`;

/** What haproxy.loaded holds for a config. */
export const configDigest = (config: string) =>
  `${createHash('sha256').update(config).digest('hex')}\n`;

const UUID_VALUE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What a guest's request loses before the proxy adds its own headers. */
const STRIPPED: HttpRequestRule[] = [
  ...Object.values(META_HEADERS).map((name) => ({ action: 'del-header' as const, name })),
  { action: 'del-header', name: 'Forwarded' },
  ...['X-Forwarded-', 'X-Kumo-', 'X-Instance-ID', 'X-Tenant-ID', 'X-Metadata-Provider'].map(
    (name) => ({ action: 'del-header' as const, name, prefix: true }),
  ),
];

/** haproxy.cfg of the proxy; throws ValidationError naming the field on a bad value. */
export function proxyConfig(spec: ProxySpec): string {
  if (typeof spec.header.value !== 'string' || !UUID_VALUE.test(spec.header.value))
    throw new ValidationError('header.value', 'must be a lower-case uuid');
  if (spec.header.name !== 'X-Kumo-Router-ID' && spec.header.name !== 'X-Kumo-Network-ID')
    throw new ValidationError('header.name', 'must be X-Kumo-Router-ID or X-Kumo-Network-ID');
  return renderConfig({
    maxconn: 1024,
    timeouts: { connect: 5, client: 30, server: 30, httpRequest: 10 },
    listens: [
      {
        name: 'metadata',
        mode: 'http',
        bind: spec.bind,
        httpRequest: [
          ...STRIPPED,
          { action: 'set-header', name: spec.header.name, value: { literal: spec.header.value } },
          { action: 'set-header', name: 'X-Forwarded-For', value: { fetch: 'src' } },
        ],
        servers: [{ name: 'relay', address: { unix: spec.socket } }],
      },
    ],
  });
}

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

/**
 * The proxy's files and process; read-only, no command runs (files, the pid file and
 * /proc only). Pass the spec when one is desired, so its namespace is compared; a bare dir
 * is enough for a teardown.
 */
export async function observeProxy(specOrDir: ProxySpec | string): Promise<ObservedProxy> {
  const spec = typeof specOrDir === 'string' ? null : specOrDir;
  const dir = spec?.dir ?? (specOrDir as string);
  const paths = proxyPaths(dir);
  const dirExists = await exists(dir);
  if (!dirExists) return { dir, dirExists, config: null, loaded: null, pid: null, inNetns: false };
  const [config, loaded, pid] = await Promise.all([
    readFileOrNull(paths.config),
    readFileOrNull(loadedPath(dir)),
    findHaproxy(paths),
  ]);
  const here = pid !== null && spec !== null && (await inNetns(pid, spec.netns));
  return { dir, dirExists, config, loaded, pid, inNetns: here };
}

function teardown(o: ObservedProxy): Step[] {
  const paths = proxyPaths(o.dir);
  return [
    ...(o.pid !== null
      ? [
          {
            kind: 'daemon' as const,
            action: 'stop' as const,
            daemon: { pidfile: paths.pidfile, expected: haproxyExpected(paths) },
            why: 'stop the metadata proxy',
          },
        ]
      : []),
    ...(o.dirExists ? [{ kind: 'remove' as const, path: o.dir, why: 'metadata proxy files' }] : []),
  ];
}

/** Start, or reload when the running one loaded another config or lives elsewhere. */
function runSteps(spec: ProxySpec, o: ObservedProxy, digest: string, changed: boolean): Step[] {
  const paths = proxyPaths(spec.dir);
  const daemon = { pidfile: paths.pidfile, expected: haproxyExpected(paths) };
  const loaded = { kind: 'file' as const, path: loadedPath(spec.dir), content: digest };
  if (o.pid === null)
    return [
      {
        kind: 'daemon',
        action: 'start',
        daemon,
        spec: startCommand(paths, spec.netns),
        why: 'start the metadata proxy',
      },
      { ...loaded, why: 'the config haproxy started with' },
    ];
  const moved = !o.inNetns;
  if (!moved && !changed && o.loaded === digest) return [];
  return [
    {
      kind: 'command',
      spec: reloadCommand(paths, o.pid, spec.netns),
      why: moved ? 'metadata proxy in a stale namespace' : 'reload the metadata proxy',
    },
    { ...loaded, why: 'the config haproxy reloaded' },
  ];
}

/** The steps that make `o` match `desired` (null: no proxy, no files). */
export function proxySteps(desired: ProxySpec | null, o: ObservedProxy): Step[] {
  if (desired === null) return teardown(o);
  const config = proxyConfig(desired);
  const paths = proxyPaths(desired.dir);
  const changed = o.config !== config;
  return [
    ...(o.dirExists ? [] : [{ kind: 'mkdir' as const, path: desired.dir, why: 'metadata proxy' }]),
    ...(changed
      ? [
          { kind: 'file' as const, path: paths.config, content: config, why: 'haproxy.cfg' },
          { kind: 'command' as const, spec: checkCommand(paths.config), why: 'haproxy -c' },
        ]
      : []),
    ...runSteps(desired, o, configDigest(config), changed),
  ];
}
