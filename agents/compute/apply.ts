/**
 * The compute agent's executor: an instance's steps run through agents/lib/steps.ts
 * runSteps (kit steps: OVSDB transactions, `ip` commands), its own kinds through the
 * `extra` handler here (libvirt, the image cache, qemu-img, the instance directory, the
 * wait for ACTIVE ports), stopping at the first failure; it measures each spawn phase.
 *
 * Invariants:
 * - instance files are written to a temporary name and renamed, and an existing disk is
 *   never replaced, so a crash mid-step leaves either nothing or a whole file; files are
 *   written only into, and removed only with, a directory whose owner marker names this
 *   host (instance-dir.ts, which refuses a foreign one: a PermanentError); the config drive
 *   is built the same way (config-drive.ts);
 * - every libvirt step looks the domain up by uuid and checks the state it needs first
 *   (resume, destroy), so a step that finds its work already done is a no-op; a domain
 *   XML libvirt refuses is a PermanentError (retrying sends the same XML);
 * - `plug-vifs` is a phase: it observes the taps and OVS rows once the domain runs
 *   (vif.ts), plans from them (vif-plan.ts, pure) and runs those kit steps, so the plug
 *   decision is made from what is there, never inside a write.
 */
import { chmod, copyFile, open, rename, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PermanentError } from '../../contracts/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import {
  type Domain,
  DomainCreateFlags,
  DomainDefineFlags,
  DomainState,
  type LibvirtClient,
  LibvirtError,
  UndefineFlags,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import { createOverlay } from '../../host/qemu/img.ts';
import { type ExecutorDeps, runSteps } from '../lib/steps.ts';
import { buildConfigDrive, type ConfigDriveDeps } from './config-drive.ts';
import { type ImageCache, ImageError } from './image-cache.ts';
import { createInstanceDir, removeInstanceDir, resetInstanceFiles } from './instance-dir.ts';
import type { PhaseTimes } from './report.ts';
import { type ComputeStep, type InstanceStep, phaseOf } from './steps.ts';
import { observeVifs, type VifDeps } from './vif.ts';
import { planVifs } from './vif-plan.ts';
import { defineSecret, removeSecret, runVolumeStep } from './volumes.ts';

export interface ApplyDeps extends VifDeps, ConfigDriveDeps {
  libvirt: LibvirtClient;
  images(): ImageCache;
  log: Logger;
  /** Resolves once every port of the instance is ACTIVE in the API; rejects on timeout. */
  waitPorts(instanceId: string, timeoutMs: number): Promise<void>;
  /** Steps applied by tool or kind (agents/lib/steps.ts); none counted when absent. */
  metrics?: StepMetrics;
}

/** What an apply did: the time of each spawn phase, the report step it reached, and the
 * attachments whose attach or detach failed (why). */
export interface Applied {
  times: PhaseTimes;
  report: Extract<ComputeStep, { kind: 'report' }> | null;
  volumeFailures: Map<string, string>;
}

const POLL_MS = 250;
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Copies `from` to `to` through a temporary name; `to` ends up whole or absent. */
async function copyWhole(from: string, to: string): Promise<void> {
  if (await exists(to)) return;
  const part = `${to}.part`;
  await copyFile(from, part);
  await chmod(part, 0o644);
  await rename(part, to);
}

async function createDisk(deps: ApplyDeps, step: Extract<ComputeStep, { kind: 'disk' }>) {
  if (await exists(step.path)) return;
  const part = `${step.path}.part`;
  await rm(part, { force: true });
  const disk = step.disk;
  if (disk.kind === 'overlay') {
    if (step.base === null) throw new Error(`disk ${step.path}: an overlay needs its base`);
    const size = disk.sizeBytes === undefined ? {} : { sizeBytes: disk.sizeBytes };
    await createOverlay(deps.runner, {
      base: step.base,
      baseFormat: disk.baseFormat,
      path: part,
      ...size,
    });
  } else {
    await deps.runner.run({
      argv: ['qemu-img', 'create', '-q', '-f', 'qcow2', part, String(disk.sizeBytes)],
    });
  }
  await rename(part, step.path);
}

/** Shuts the guest down (ACPI) and waits up to `timeoutMs`, then powers it off. */
async function stopDomain(deps: ApplyDeps, dom: Domain, graceful: boolean, timeoutMs: number) {
  const lv = deps.libvirt;
  const off = async () => (await lv.getState(dom)).state === DomainState.SHUTOFF;
  if (await off()) return;
  if (graceful && timeoutMs > 0) {
    await lv
      .shutdown(dom)
      .catch((e: Error) =>
        deps.log.info({ instanceId: dom.uuid, err: e.message }, 'shutdown refused; powering off'),
      );
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await off()) return;
      await sleep(POLL_MS);
    }
    deps.log.info({ instanceId: dom.uuid, timeoutMs }, 'guest did not shut down; powering off');
  }
  if (!(await off())) await lv.destroy(dom);
}

/** libvirt's answers to a domain XML it will never take. */
const REFUSED = new Set<number>([
  VirErrorNumber.VIR_ERR_XML_ERROR,
  VirErrorNumber.VIR_ERR_XML_DETAIL,
  VirErrorNumber.VIR_ERR_CONFIG_UNSUPPORTED,
  VirErrorNumber.VIR_ERR_INVALID_ARG,
]);

async function define(lv: LibvirtClient, xml: string): Promise<void> {
  try {
    await lv.defineXml(xml, DomainDefineFlags.VALIDATE);
  } catch (e) {
    if (e instanceof LibvirtError && REFUSED.has(e.code))
      throw new PermanentError(`libvirt refuses the domain: ${e.message}`, { cause: e });
    throw e;
  }
}

type DomainStep = Exclude<
  Extract<ComputeStep, { uuid: string }>,
  { kind: 'volume-attach' | 'volume-detach' }
>;

async function domainStep(deps: ApplyDeps, step: DomainStep): Promise<void> {
  const lv = deps.libvirt;
  const dom = await lv.lookupByUuid(step.uuid);
  switch (step.kind) {
    case 'start-paused':
      await lv.create(dom, DomainCreateFlags.START_PAUSED);
      return;
    case 'resume':
      if ((await lv.getState(dom)).state === DomainState.PAUSED) await lv.resume(dom);
      return;
    case 'pause':
      return lv.suspend(dom);
    case 'stop':
      return stopDomain(deps, dom, step.graceful, step.timeoutMs);
    case 'managed-save':
      return lv.managedSave(dom);
    case 'discard-save':
      return lv.managedSaveRemove(dom);
    case 'undefine':
      return lv.undefine(dom, UndefineFlags.MANAGED_SAVE);
  }
}

/**
 * Caches the boot's images. One the image service no longer has (404: a kernel or ramdisk
 * deleted after the server was created) fails the task naming what it is to the instance.
 */
async function fetchImages(deps: ApplyDeps, step: Extract<ComputeStep, { kind: 'image-fetch' }>) {
  for (const image of step.images) {
    try {
      await deps.images().ensure(image);
    } catch (e) {
      if (!(e instanceof ImageError) || e.httpStatus !== 404) throw e;
      const role = step.roles[image.id] ?? `image ${image.id}`;
      throw new PermanentError(`${role} is missing in the image service: ${e.message}`, {
        cause: e,
      });
    }
  }
}

/** Observes the VIFs of the running domain, plans their plug, runs it. */
async function plugVifs(deps: ApplyDeps, step: Extract<ComputeStep, { kind: 'plug-vifs' }>) {
  const v = step.vifs;
  const observed = await observeVifs(deps, { vmUuid: v.vmUuid, nics: v.nics, netns: v.netns });
  await runSteps(executorDeps(deps), planVifs(v, observed), { instanceId: v.vmUuid });
}

async function ownStep(
  deps: ApplyDeps,
  step: Exclude<ComputeStep, { kind: 'report' }>,
  applied: Applied,
) {
  switch (step.kind) {
    case 'volume-secret':
      return defineSecret(deps.libvirt, step.xml, step.value);
    case 'volume-attach':
    case 'volume-detach':
      return runVolumeStep(deps.libvirt, step, applied.volumeFailures);
    case 'volume-secret-remove':
      return removeSecret(deps.libvirt, step.attachmentId);
    case 'image-fetch':
      return fetchImages(deps, step);
    case 'reset-files':
      return resetInstanceFiles(step.paths, step.host, step.imageIds);
    case 'instance-dir':
      return createInstanceDir(step.paths, step.host, step.imageIds);
    case 'disk':
      return createDisk(deps, step);
    case 'copy':
      return copyWhole(step.from, step.to);
    case 'config-drive':
      return buildConfigDrive(deps, step);
    case 'touch':
      return (await open(step.path, 'a', 0o644)).close();
    case 'define':
      return define(deps.libvirt, step.xml);
    case 'plug-vifs':
      return plugVifs(deps, step);
    case 'wait-ports':
      return deps.waitPorts(step.instanceId, step.timeoutMs);
    case 'remove-instance-dir':
      return removeInstanceDir(step.paths, step.host);
    default:
      return domainStep(deps, step);
  }
}

export const executorDeps = (deps: ApplyDeps): ExecutorDeps => ({
  runner: deps.runner,
  log: deps.log,
  ovsdb: deps.ovsdb,
  metrics: deps.metrics,
});

/** Runs the steps in order (the first failure propagates); returns what it did. */
export async function runInstanceSteps(
  deps: ApplyDeps,
  id: string,
  steps: readonly InstanceStep[],
): Promise<Applied> {
  const applied: Applied = { times: {}, report: null, volumeFailures: new Map() };
  const extra = async (step: ComputeStep) => {
    if (step.kind === 'report') applied.report = step;
    else await ownStep(deps, step, applied);
  };
  const exec = executorDeps(deps);
  for (const step of steps) {
    const t0 = performance.now();
    await runSteps(exec, [step], { instanceId: id }, extra);
    const phase = phaseOf(step);
    if (phase)
      applied.times[phase] = Math.round((applied.times[phase] ?? 0) + performance.now() - t0);
  }
  return applied;
}
