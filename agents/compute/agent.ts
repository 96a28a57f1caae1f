/**
 * kumo-compute-agent hooks: libvirt domains for the instances the API hands to this host.
 *
 * Invariants:
 * - one persistent libvirt connection (keepalive, reconnect); its lifecycle events for a
 *   domain of this host, and its reconnects, feed the reconcile queue (links.ts), so
 *   power states follow what happens to guests outside the agent too;
 * - one reconcile key per instance (`instance:<uuid>`), run by core/reconciler.ts with the
 *   `instance` kind (instance.ts), up to COMPUTE_QUEUE_WIDTH at once; every hint runs a
 *   reconcile (the API hints an attachment's change with the task_id it already hinted,
 *   so a revision would skip it; a task is still done once: the ledger); reports go
 *   through core/status.ts to update_instance, only when they changed, and attachments'
 *   through report_status (agents/lib/status.ts);
 * - a resync removes the attachment secrets (`kumo-attachment-<uuid>`) that no instance
 *   of this host lists and no domain of this host names (volumes.ts pruneSecrets);
 * - a resync forgets what was reported (sent again) and the failed tasks (tried again),
 *   and reconciles every instance the API lists for this host and every instance this host
 *   still has (own domains, own instance directories: never another host's on a shared
 *   instances_path), so what the API no longer claims is removed;
 * - after a host boot (boot.ts), the first resync that reads the API's list marks every
 *   listed instance `onStart` (an active one whose guest is off is started again); an
 *   instance leaves it when a reconcile of it succeeds, and once none is left the boot
 *   is recorded, so a guest that shut itself down while only the agent was down stays off;
 * - a resync prunes the image cache: an image stays while any instance directory names
 *   it, or while it was used in the last UNUSED_IMAGE_MIN_AGE_MS;
 * - stopping, restarting or killing the agent never touches a guest: guests are libvirtd's
 *   children, and nothing here runs on exit but closing the connections;
 * - `configurations` is measured for every report: host resources, and what this host's
 *   own domains use (all of them, running or not: a stopped guest keeps its claim).
 */
import { mkdir } from 'node:fs/promises';
import { PermanentError } from '../../contracts/errors.ts';
import { GetHostInstancesResult, type UpdateInstanceArgs } from '../../contracts/instances.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { UUID } from '../../contracts/schema.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import { type KumoConfig, required } from '../../core/config.ts';
import { createReconciler, type Reconciler } from '../../core/reconciler.ts';
import { createStatusReporter, type StatusReporter } from '../../core/status.ts';
import type { LibvirtClient } from '../../host/libvirt/client.ts';
import { classify } from '../lib/errors.ts';
import { type LazyOvsdb, lazyOvsdb } from '../lib/ovsdb.ts';
import { statusReporter } from '../lib/status.ts';
import type { HookDeps } from '../run.ts';
import { type HostBoot, hostBoot } from './boot.ts';
import { consoleTail } from './console.ts';
import { type ComputeSettings, pathsOf } from './desired.ts';
import { computeSettings, hostConfigurations, type Usage, versionText } from './host-info.ts';
import { createImageCache, type ImageCache } from './image-cache.ts';
import { createInstanceKind, forgetFailures, type TaskLedger } from './instance.ts';
import { ownInstanceIds, referencedImages } from './instance-dir.ts';
import { connectLibvirt, watchDomains } from './links.ts';
import { type KumoMetadata, listOwnDomains } from './observe.ts';
import { getConfigDrive, waitPortsActive } from './rpc.ts';
import { pruneOrphanSecrets } from './volumes.ts';

/** update_instance for every changed report (the API ends a task only on its own id). */
function instanceReporter({ broker, log }: HookDeps): StatusReporter<UpdateInstanceArgs> {
  return createStatusReporter<UpdateInstanceArgs>({
    async send(changes) {
      for (const { value } of changes) {
        await broker.cast(PLUGIN_TOPIC, 'update_instance', value);
        const { host: _host, instance_id: instanceId, ...report } = value;
        log.info({ instanceId, ...report }, 'instance reported');
      }
    },
  });
}

function imageCache({ config, runner, log }: HookDeps, settings: ComputeSettings) {
  let cache: ImageCache | undefined;
  return () =>
    (cache ??= createImageCache({
      dir: settings.baseDir,
      apiUrl: config.compute.api_url,
      token: required(config.api.service_token, 'api', 'service_token'),
      runner,
      log,
    }));
}

/** The `instance` kind on the reconciler; `applied` hears of every successful apply. */
function instanceReconciler(a: ComputeAgent, hookDeps: HookDeps): Reconciler {
  const { runner, log, broker } = hookDeps;
  const rpc = { broker, host: a.settings.host };
  const kind = createInstanceKind({
    libvirt: a.libvirt,
    runner,
    log,
    broker,
    host: a.settings.host,
    settings: a.settings,
    ovsdb: () => a.ovsdb.get(),
    images: a.images,
    waitPorts: (id, timeoutMs) => waitPortsActive(rpc, id, timeoutMs),
    configDrive: (id) => getConfigDrive(rpc, id),
    reporter: a.reporter,
    ledger: a.ledger,
    onStart: a.onStart,
    applied: (id) => {
      if (a.onStart.delete(id)) void recordBootIfDone(a);
    },
    attachments: a.attachments,
    volumeIds: a.volumeIds,
    metrics: hookDeps.metrics?.steps,
  });
  return createReconciler({ log, kinds: { instance: kind }, classify });
}

/**
 * Compute reconciles wait inside their slot (ports up to vif_plugging_timeout, a graceful
 * stop up to shutdown_timeout, image downloads): a wide queue keeps a few such waits
 * from holding up every other instance's task, delete and resync.
 */
export const COMPUTE_QUEUE_WIDTH = 16;
/** An unused cached image is removed once unused this long (Nova's default, 24 h). */
export const UNUSED_IMAGE_MIN_AGE_MS = 24 * 3600 * 1000;

interface ComputeAgent {
  config: KumoConfig;
  log: HookDeps['log'];
  broker: HookDeps['broker'];
  settings: ComputeSettings;
  libvirt: LibvirtClient;
  ovsdb: LazyOvsdb;
  versions: { libvirt: string; hypervisor: number };
  images(): ImageCache;
  reporter: StatusReporter<UpdateInstanceArgs>;
  /** report_status of volume attachments. */
  attachments: StatusReporter<ResourceStatus>;
  /** The attachment ids each instance's last fetched spec lists. */
  volumeIds: Map<string, ReadonlySet<string>>;
  ledger: TaskLedger;
  /** Ids to run again if active and off: the host booted, and they are not reconciled since. */
  onStart: Set<string>;
  reconciler?: Reconciler;
  metaCache: Map<string, KumoMetadata | null>;
  /** Instance ids this agent has seen as its own. */
  known: Set<string>;
  ctl?: AgentControl;
  boot?: HostBoot;
  /** The API's list of this host's instances has been read once by this process. */
  listRead: boolean;
  lastUsage: Usage;
}

function enqueue(a: ComputeAgent, id: string): void {
  a.known.add(id);
  a.ctl?.enqueue('instance', id);
}

/** Records the host's boot as dealt with once no instance waits for its restart. */
async function recordBootIfDone(a: ComputeAgent): Promise<void> {
  if (!a.boot?.rebooted || a.onStart.size > 0) return;
  await a.boot.record().then(
    () => a.log.info({ bootId: a.boot?.current }, 'host boot dealt with; recorded'),
    (e: Error) => a.log.warn({ err: e.message }, 'boot id not recorded'),
  );
}

/**
 * Removes cached images that no instance directory names (whichever host's: the cache
 * may be shared) and that were not used for a day.
 */
async function pruneImages(a: ComputeAgent): Promise<void> {
  try {
    const keep = await referencedImages(a.settings.instancesPath);
    const removed = await a.images().prune(keep, { olderThanMs: UNUSED_IMAGE_MIN_AGE_MS });
    a.log.debug({ kept: [...keep], removed }, 'image cache pruned');
  } catch (e) {
    a.log.warn({ err: (e as Error).message }, 'image cache not pruned');
  }
}

/**
 * Forgets, for a resync: failed tasks (tried again), what was reported (sent again), and
 * anything of instances no longer on this host.
 */
function forgetForResync(a: ComputeAgent, ids: ReadonlySet<string>): void {
  forgetFailures(a.ledger);
  a.attachments.forget();
  for (const id of a.ledger.keys()) if (!ids.has(id)) a.ledger.delete(id);
  for (const key of a.reporter.sentKeys())
    if (!ids.has(key.slice(key.indexOf(':') + 1))) a.reporter.drop(key);
  a.reconciler?.forget();
}

async function resync(a: ComputeAgent): Promise<void> {
  const { host } = a.settings;
  const reply = await a.broker.call(PLUGIN_TOPIC, 'get_host_instances', { host });
  const listed = GetHostInstancesResult.parse(reply).instances;
  if (!a.listRead) {
    a.listRead = true;
    if (a.boot?.rebooted) for (const id of listed) a.onStart.add(id);
    await recordBootIfDone(a);
  }
  const own = await listOwnDomains(a.libvirt, host, a.metaCache);
  const dirs = await ownInstanceIds(a.settings.instancesPath, host);
  const ids = new Set([...listed, ...own.map((d) => d.dom.uuid), ...dirs]);
  forgetForResync(a, ids);
  for (const id of ids) enqueue(a, id);
  await pruneImages(a);
  await pruneOrphanSecrets(a);
}

async function reconcile(
  a: ComputeAgent,
  resource: string,
  id: string,
  revision?: number,
): Promise<void> {
  if (resource !== 'instance')
    throw new PermanentError(`kumo-compute-agent does not manage ${resource}`);
  if (!UUID.test(id)) throw new PermanentError(`not an instance id: ${JSON.stringify(id)}`);
  a.known.add(id);
  a.log.debug({ instanceId: id, revision }, 'instance hinted');
  await a.reconciler?.reconcile('instance', id);
  a.metaCache.delete(id);
  a.log.debug({ instanceId: id }, 'instance reconciled');
}

async function connect(hookDeps: HookDeps): Promise<ComputeAgent> {
  const { config, log, broker } = hookDeps;
  const settings = computeSettings(config);
  const links = hookDeps.metrics?.links;
  const libvirt = await connectLibvirt(config, log, links);
  const ovsdb = lazyOvsdb(config, log, links);
  const a: ComputeAgent = {
    config,
    log,
    broker,
    settings,
    libvirt,
    ovsdb,
    versions: {
      libvirt: versionText(await libvirt.getLibVersion()),
      hypervisor: await libvirt.getVersion(),
    },
    images: imageCache(hookDeps, settings),
    reporter: instanceReporter(hookDeps),
    attachments: statusReporter(broker, settings.host, 'compute'),
    volumeIds: new Map(),
    ledger: new Map(),
    onStart: new Set(),
    metaCache: new Map(),
    known: new Set(),
    listRead: false,
    lastUsage: { vcpus_used: 0, memory_mb_used: 0, local_gb_used: 0, running_vms: 0 },
  };
  a.reconciler = instanceReconciler(a, hookDeps);
  return a;
}

export async function computeHooks(hookDeps: HookDeps): Promise<AgentHooks> {
  const a = await connect(hookDeps);
  const { settings, log } = a;
  let unwatch: (() => Promise<void>) | undefined;
  return {
    concurrency: COMPUTE_QUEUE_WIDTH,
    configurations: () => hostConfigurations(a),
    async start(control) {
      a.ctl = control;
      await mkdir(settings.instancesPath, { recursive: true, mode: 0o755 });
      a.boot = await hostBoot(settings.stateDir);
      log.info({ bootId: a.boot.current, rebooted: a.boot.rebooted }, 'host boot checked');
      unwatch = await watchDomains({ ...a, enqueue: (id) => enqueue(a, id) });
    },
    resync: () => resync(a),
    reconcile: (resource, id, revision) => reconcile(a, resource, id, revision),
    async call(message) {
      if (message.method !== 'get_console_output')
        throw new Error(`kumo-compute-agent does not handle ${message.method}`);
      const { instance_id: id, length } = message.args;
      return { output: await consoleTail(pathsOf(settings, id).console, length) };
    },
    async stop() {
      await unwatch?.();
      await a.libvirt.close();
      await a.ovsdb.close();
    },
  };
}
