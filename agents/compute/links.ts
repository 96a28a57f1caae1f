/**
 * The compute agent's links to the host: its libvirt connection, its (lazily opened)
 * OVSDB connection, and the watch that turns libvirt lifecycle events and reconnects into
 * reconcile requests.
 *
 * Invariants: an event feeds the queue only for a domain this agent has seen as its own
 * or whose metadata names this host; after a libvirtd reconnect (events in between are
 * lost) every own domain and every own instance directory is reconciled again; libvirtd
 * reconnects are counted when the agent has metrics.
 */
import type { KumoConfig } from '../../core/config.ts';
import type { LinkMetrics } from '../../core/metrics.ts';
import {
  createLibvirtClient,
  type LibvirtClient,
  type LifecycleEvent,
} from '../../host/libvirt/client.ts';
import type { HookDeps } from '../run.ts';
import type { ComputeSettings } from './desired.ts';
import { ownInstanceIds } from './instance-dir.ts';
import { type KumoMetadata, listOwnDomains, parseKumoMetadata } from './observe.ts';

/** The libvirt connection; with `metrics`, its reconnects (not the first connect) counted. */
export async function connectLibvirt(
  config: KumoConfig,
  log: HookDeps['log'],
  metrics?: LinkMetrics,
): Promise<LibvirtClient> {
  const client = await createLibvirtClient({
    uri: config.compute.libvirt_uri,
    socket: config.compute.libvirt_socket,
    log: log.child({ component: 'libvirt' }),
    // qemu:///system may re-probe its emulators on capability-bound calls (seconds)
    timeoutMs: 120_000,
    reconnect: { initialMs: 500, maxMs: 10_000 },
    keepalive: { intervalMs: 5000, count: 6 },
  });
  if (metrics) client.onReconnected(() => metrics.libvirtReconnects.inc());
  return client;
}

export interface Watch {
  libvirt: LibvirtClient;
  settings: ComputeSettings;
  metaCache: Map<string, KumoMetadata | null>;
  /** Instance ids this agent has seen as its own. */
  known: Set<string>;
  enqueue(id: string): void;
  log: HookDeps['log'];
}

/** Lifecycle events of this host's domains, and libvirtd reconnects, feed the queue. */
export async function watchDomains(w: Watch): Promise<() => Promise<void>> {
  const { libvirt, metaCache, known, settings } = w;
  const onEvent = async (ev: LifecycleEvent) => {
    const id = ev.domain.uuid;
    metaCache.delete(id);
    if (known.has(id)) {
      w.enqueue(id);
      if (ev.eventName === 'UNDEFINED') known.delete(id);
      return;
    }
    if (ev.eventName === 'UNDEFINED') return;
    const meta = await libvirt.getXmlDesc(ev.domain).then(parseKumoMetadata, () => null);
    if (meta?.host === settings.host) w.enqueue(id);
  };
  const requeueOwn = async () => {
    for (const { dom } of await listOwnDomains(libvirt, settings.host, metaCache))
      w.enqueue(dom.uuid);
    for (const id of await ownInstanceIds(settings.instancesPath, settings.host)) w.enqueue(id);
  };
  const registration = await libvirt.registerLifecycle((ev) => {
    onEvent(ev).catch((e: Error) =>
      w.log.warn({ instanceId: ev.domain.uuid, err: e.message }, 'lifecycle event not handled'),
    );
  });
  const unsubscribe = libvirt.onReconnected(() => {
    requeueOwn().catch((e: Error) => w.log.warn({ err: e.message }, 'requeue after reconnect'));
  });
  return async () => {
    unsubscribe();
    await registration.deregister().catch(() => {});
  };
}
