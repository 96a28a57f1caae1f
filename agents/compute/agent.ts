/**
 * kumo-compute-agent hooks: libvirt domains for the instances the API hands to this host.
 *
 * Invariants:
 * - one persistent libvirt connection (keepalive, reconnect); its lifecycle events for a
 *   domain of this host, and its reconnects, feed the reconcile queue, so power states
 *   follow what happens to guests outside the agent too;
 * - one reconcile key per instance (`instance:<uuid>`, instance.ts); a resync reconciles
 *   every instance the API lists for this host and every instance this host still has
 *   (own domains, instance directories), so what the API no longer claims is removed;
 *   on the agent's start an active instance whose guest is off is started again;
 * - stopping, restarting or killing the agent never touches a guest: guests are libvirtd's
 *   children, and nothing here runs on exit but closing the connections;
 * - `configurations` is measured for every report: host resources, and what this host's
 *   own domains use (all of them, running or not: a stopped guest keeps its claim).
 */
import { mkdir } from 'node:fs/promises';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { UUID } from '../../contracts/schema.ts';
import { GetHostInstancesResult } from '../../contracts/servers.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import { type KumoConfig, required } from '../../core/config.ts';
import {
  createLibvirtClient,
  type LibvirtClient,
  type LifecycleEvent,
} from '../../host/libvirt/client.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { hostResources } from '../../host/system/resources.ts';
import type { HookDeps } from '../run.ts';
import { consoleTail } from './console.ts';
import { type ComputeSettings, pathsOf } from './desired.ts';
import { createImageCache, type ImageCache } from './image-cache.ts';
import { type InstanceDeps, reconcileInstance, waitPortsActive } from './instance.ts';
import { instanceDirIds, type KumoMetadata, listOwnDomains, parseKumoMetadata } from './observe.ts';

export function computeSettings(config: KumoConfig): ComputeSettings {
  const instancesPath = config.compute.instances_path ?? `${config.DEFAULT.state_path}/instances`;
  return {
    host: config.DEFAULT.host,
    instancesPath,
    baseDir: `${instancesPath}/_base`,
    virtType: config.compute.virt_type,
    intBridge: config.ovs.integration_bridge,
    ...(config.ovs.vswitchd_netns ? { vswitchdNetns: config.ovs.vswitchd_netns } : {}),
    vifPluggingTimeoutMs: config.compute.vif_plugging_timeout * 1000,
    shutdownTimeoutMs: config.compute.shutdown_timeout * 1000,
  };
}

/** libvirt's version number (major * 1e6 + minor * 1e3 + release) as text. */
const versionText = (v: number) =>
  `${Math.floor(v / 1e6)}.${Math.floor((v % 1e6) / 1e3)}.${v % 1e3}`;

function connectLibvirt(config: KumoConfig, log: HookDeps['log']): Promise<LibvirtClient> {
  return createLibvirtClient({
    uri: config.compute.libvirt_uri,
    socket: config.compute.libvirt_socket,
    log: log.child({ component: 'libvirt' }),
    // qemu:///system may re-probe its emulators on capability-bound calls (seconds)
    timeoutMs: 120_000,
    reconnect: { initialMs: 500, maxMs: 10_000 },
    keepalive: { intervalMs: 5000, count: 6 },
  });
}

/** A lazily opened OVSDB connection: instances that only report never need one. */
function lazyOvsdb(config: KumoConfig, log: HookDeps['log']) {
  let client: Promise<OvsdbClient> | undefined;
  return {
    get(): Promise<OvsdbClient> {
      client ??= createOvsdbClient({
        socket: config.ovs.ovsdb_connection,
        log: log.child({ component: 'ovsdb' }),
        timeoutMs: 10_000,
        reconnect: { initialMs: 200, maxMs: 5000 },
      }).catch((e: unknown) => {
        client = undefined;
        throw e;
      });
      return client;
    },
    async close() {
      const c = await client?.catch(() => undefined);
      await c?.close();
    },
  };
}

interface Usage {
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  running_vms: number;
}

function usageOf(own: { dom: { id: number }; meta: KumoMetadata }[]): Usage {
  const sum = (f: (m: KumoMetadata) => number) => own.reduce((n, d) => n + f(d.meta), 0);
  return {
    vcpus_used: sum((m) => m.vcpus),
    memory_mb_used: sum((m) => m.memoryMiB),
    local_gb_used: sum((m) => m.diskGiB),
    running_vms: own.filter((d) => d.dom.id > 0).length,
  };
}

function instanceDeps(
  { config, runner, log, broker }: HookDeps,
  settings: ComputeSettings,
  libvirt: LibvirtClient,
  ovsdb: ReturnType<typeof lazyOvsdb>,
): InstanceDeps {
  let imageCache: ImageCache | undefined;
  const deps: InstanceDeps = {
    libvirt,
    runner,
    log,
    broker,
    settings,
    ovsdb: () => ovsdb.get(),
    images: () =>
      (imageCache ??= createImageCache({
        dir: settings.baseDir,
        apiUrl: config.compute.api_url,
        token: required(config.api.service_token, 'api', 'service_token'),
        runner,
        log,
      })),
    waitPorts: (id) => waitPortsActive(deps, id),
    state: { done: new Map(), lastPower: new Map(), onStart: new Set() },
  };
  return deps;
}

interface Watch {
  libvirt: LibvirtClient;
  settings: ComputeSettings;
  metaCache: Map<string, KumoMetadata | null>;
  /** Instance ids this agent has seen as its own. */
  known: Set<string>;
  enqueue(id: string): void;
  log: HookDeps['log'];
}

/** Lifecycle events of this host's domains, and libvirtd reconnects, feed the queue. */
async function watchDomains(w: Watch): Promise<() => Promise<void>> {
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
    for (const id of await instanceDirIds(settings.instancesPath)) w.enqueue(id);
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

export async function computeHooks(hookDeps: HookDeps): Promise<AgentHooks> {
  const { config, log, broker } = hookDeps;
  const settings = computeSettings(config);
  const host = settings.host;
  const libvirt = await connectLibvirt(config, log);
  const libvirtVersion = versionText(await libvirt.getLibVersion());
  const hypervisorVersion = await libvirt.getVersion();
  const ovsdb = lazyOvsdb(config, log);
  const deps = instanceDeps(hookDeps, settings, libvirt, ovsdb);
  const metaCache = new Map<string, KumoMetadata | null>();
  const known = new Set<string>();
  let ctl: AgentControl | undefined;
  let unwatch: (() => Promise<void>) | undefined;
  let lastUsage: Usage = { vcpus_used: 0, memory_mb_used: 0, local_gb_used: 0, running_vms: 0 };

  const enqueue = (id: string) => {
    known.add(id);
    ctl?.enqueue('instance', id);
  };

  const measureUsage = async () => {
    try {
      lastUsage = usageOf(await listOwnDomains(libvirt, host, metaCache));
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'domain usage not measured; reporting the last');
    }
    return lastUsage;
  };

  return {
    configurations: async () => {
      const r = await hostResources(settings.instancesPath);
      return {
        hypervisor_type: 'QEMU',
        hypervisor_version: hypervisorVersion,
        libvirt_version: libvirtVersion,
        virt_type: settings.virtType,
        instances_path: settings.instancesPath,
        cpu_model: r.cpuModel,
        vcpus: r.vcpus,
        memory_mb: r.memoryMb,
        local_gb: r.localGb,
        free_disk_gb: r.freeDiskGb,
        ...(await measureUsage()),
        cpu_allocation_ratio: config.compute.cpu_allocation_ratio,
        ram_allocation_ratio: config.compute.ram_allocation_ratio,
        disk_allocation_ratio: config.compute.disk_allocation_ratio,
        reserved_host_memory_mb: config.compute.reserved_host_memory_mb,
      };
    },
    async start(control) {
      ctl = control;
      await mkdir(settings.instancesPath, { recursive: true, mode: 0o755 });
      unwatch = await watchDomains({ libvirt, settings, metaCache, known, enqueue, log });
    },
    async resync(reason) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_host_instances', { host });
      const listed = GetHostInstancesResult.parse(reply).instances;
      if (reason === 'start') for (const id of listed) deps.state.onStart.add(id);
      const own = await listOwnDomains(libvirt, host, metaCache);
      const dirs = await instanceDirIds(settings.instancesPath);
      for (const id of new Set([...listed, ...own.map((d) => d.dom.uuid), ...dirs])) enqueue(id);
    },
    async reconcile(resource, id) {
      if (resource !== 'instance')
        throw new Error(`kumo-compute-agent does not manage ${resource}`);
      if (!UUID.test(id)) throw new Error(`not an instance id: ${JSON.stringify(id)}`);
      known.add(id);
      await reconcileInstance(deps, id);
      metaCache.delete(id);
    },
    async call(message) {
      if (message.method !== 'get_console_output')
        throw new Error(`kumo-compute-agent does not handle ${message.method}`);
      const { instance_id: id, length } = message.args;
      return { output: await consoleTail(pathsOf(settings, id).console, length) };
    },
    async stop() {
      await unwatch?.();
      await libvirt.close();
      await ovsdb.close();
    },
  };
}
