/**
 * One namespace's metadata proxy as data: an haproxy in the qrouter or qdhcp namespace
 * that listens on `bind`, strips every header a guest could forge (META_HEADERS, Forwarded,
 * X-Forwarded-*, X-Kumo-*, X-Instance-ID*, X-Metadata-Provider*), adds the router's or
 * network's id and `X-Forwarded-For` from the connection's source address, and forwards over
 * the agent's relay socket. desired (ProxySpec) → observe (observeProxy) → plan (proxySteps),
 * through the shared haproxy instance (agents/lib/haproxy-instance.ts).
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
import { META_HEADERS } from '../../contracts/metadata.ts';
import { UUID, ValidationError } from '../../contracts/schema.ts';
import { type HttpRequestRule, renderConfig } from '../../host/haproxy/config.ts';
import {
  configDigest,
  haproxyPaths,
  haproxySteps,
  haproxyTeardown,
  type ObservedHaproxy,
  observeHaproxy,
} from './haproxy-instance.ts';
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

export type ObservedProxy = ObservedHaproxy;

export const proxyPaths = haproxyPaths;
export { configDigest };

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
  if (typeof spec.header.value !== 'string' || !UUID.test(spec.header.value))
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

const LABEL = 'metadata proxy';

/**
 * The proxy's files and process; read-only, no command runs (files, the pid file and
 * /proc only). Pass the spec when one is desired, so its namespace is compared; a bare dir
 * is enough for a teardown.
 */
export function observeProxy(specOrDir: ProxySpec | string): Promise<ObservedProxy> {
  if (typeof specOrDir === 'string') return observeHaproxy(specOrDir, null);
  return observeHaproxy(specOrDir.dir, specOrDir.netns);
}

/** The steps that make `o` match `desired` (null: no proxy, no files). */
export function proxySteps(desired: ProxySpec | null, o: ObservedProxy): Step[] {
  if (desired === null) return haproxyTeardown(o, LABEL);
  return haproxySteps(
    { netns: desired.netns, dir: desired.dir, config: proxyConfig(desired), label: LABEL },
    o,
  );
}
