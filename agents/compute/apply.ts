/**
 * The compute agent's executor: runs an instance's steps in order against libvirt, the
 * image cache, qemu-img, the filesystem and OVS, stopping at the first failure (a
 * LibvirtError with libvirt's code, a CommandError, an ImageError, an OvsdbError), and
 * returns how long each kind of step took.
 *
 * Invariants: instance files are written to a temporary name and renamed, and an
 * existing disk is never replaced, so a crash mid-step leaves either nothing or a whole
 * file; files are written only into, and removed only with, a directory whose owner
 * marker names this host (instance-dir.ts); every libvirt call that needs a state
 * (resume, destroy) checks it first, so a step that finds its work already done is a
 * no-op; OVS ports are looked up again right before an unplug (libvirt may have removed
 * them while destroying the domain).
 */
import { chmod, copyFile, open, rename, rm, stat } from 'node:fs/promises';
import type { Logger } from '../../core/log.ts';
import {
  type Domain,
  DomainCreateFlags,
  DomainDefineFlags,
  DomainState,
  type LibvirtClient,
  UndefineFlags,
} from '../../host/libvirt/client.ts';
import { createOverlay } from '../../host/qemu/img.ts';
import { type DesiredInstance, imagesOf, pathsOf } from './desired.ts';
import type { ImageCache } from './image-cache.ts';
import { createInstanceDir, removeInstanceDir } from './instance-dir.ts';
import type { Step } from './plan.ts';
import { findOvsPorts, plugNics, unplugPorts, type VifDeps } from './vif.ts';

export interface ApplyDeps extends VifDeps {
  libvirt: LibvirtClient;
  images(): ImageCache;
  log: Logger;
  /** Resolves once every port of the instance is ACTIVE in the API; rejects on timeout. */
  waitPorts(instanceId: string): Promise<void>;
}

export interface ApplyTarget {
  id: string;
  desired: DesiredInstance | null;
  /** Tap names of the instance's ports (OVS rows by name, besides those with its vm-uuid). */
  taps: readonly string[];
  /** The domain as observed (null: none yet). */
  dom: Domain | null;
}

export type StepTimes = Partial<Record<Step['kind'], number>>;

const POLL_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

function need<T>(v: T | null | undefined, what: string): T {
  if (v === null || v === undefined) throw new Error(`apply: ${what} is missing`);
  return v;
}

/** Copies `from` to `to` through a temporary name; `to` ends up whole or absent. */
async function copyWhole(from: string, to: string): Promise<void> {
  if (await exists(to)) return;
  const part = `${to}.part`;
  await copyFile(from, part);
  await chmod(part, 0o644);
  await rename(part, to);
}

async function writeFiles(deps: ApplyDeps, d: DesiredInstance, bases: Map<string, string>) {
  const p = d.paths;
  const images = imagesOf(d).map((i) => i.id);
  await createInstanceDir(p, deps.settings.host, images);
  const disk = d.rootDisk;
  if (disk.kind !== 'none' && !(await exists(p.disk))) {
    const part = `${p.disk}.part`;
    await rm(part, { force: true });
    if (disk.kind === 'overlay') {
      const base = need(bases.get(disk.image.id), `cached image ${disk.image.id}`);
      const size = disk.sizeBytes === undefined ? {} : { sizeBytes: disk.sizeBytes };
      await createOverlay(deps.runner, { base, baseFormat: disk.baseFormat, path: part, ...size });
    } else {
      await deps.runner.run({
        argv: ['qemu-img', 'create', '-q', '-f', 'qcow2', part, String(disk.sizeBytes)],
      });
    }
    await rename(part, p.disk);
  }
  if (d.kernel) await copyWhole(need(bases.get(d.kernel.id), 'cached kernel'), p.kernel);
  if (d.ramdisk) await copyWhole(need(bases.get(d.ramdisk.id), 'cached ramdisk'), p.ramdisk);
  await (await open(p.console, 'a', 0o644)).close();
}

/** Shuts the guest down (ACPI) and waits up to `timeoutMs`, then powers it off. */
async function stopDomain(deps: ApplyDeps, dom: Domain, graceful: boolean): Promise<void> {
  const lv = deps.libvirt;
  const off = async () => (await lv.getState(dom)).state === DomainState.SHUTOFF;
  if (await off()) return;
  const timeoutMs = deps.settings.shutdownTimeoutMs;
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

async function resumeDomain(lv: LibvirtClient, dom: Domain): Promise<void> {
  if ((await lv.getState(dom)).state === DomainState.PAUSED) await lv.resume(dom);
}

/** The steps that are one libvirt call on the domain (after a state check for resume). */
function domainStep(lv: LibvirtClient, dom: Domain, step: Step): Promise<void> {
  switch (step.kind) {
    case 'resume':
      return resumeDomain(lv, dom);
    case 'pause':
      return lv.suspend(dom);
    case 'managed-save':
      return lv.managedSave(dom);
    case 'discard-save':
      return lv.managedSaveRemove(dom);
    case 'undefine':
      return lv.undefine(dom, UndefineFlags.MANAGED_SAVE);
    default:
      throw new Error(`apply: ${step.kind} is not a domain step`);
  }
}

async function runStep(
  deps: ApplyDeps,
  t: ApplyTarget,
  step: Step,
  bases: Map<string, string>,
): Promise<void> {
  const lv = deps.libvirt;
  const dom = () => need(t.dom, 'domain');
  const desired = () => need(t.desired, 'desired instance');
  switch (step.kind) {
    case 'images':
      for (const image of imagesOf(desired()))
        bases.set(image.id, await deps.images().ensure(image));
      return;
    case 'files':
      return writeFiles(deps, desired(), bases);
    case 'define':
      t.dom = await lv.defineXml(desired().xml, DomainDefineFlags.VALIDATE);
      return;
    case 'start':
      t.dom = await lv.create(dom(), DomainCreateFlags.START_PAUSED);
      return;
    case 'plug':
      return plugNics(deps, t.id, desired().nics);
    case 'wait-ports':
      return deps.waitPorts(t.id);
    case 'stop':
      return stopDomain(deps, dom(), step.graceful);
    case 'unplug': {
      const ovsdb = await deps.ovsdb();
      return unplugPorts(ovsdb, await findOvsPorts(ovsdb, t.id, t.taps));
    }
    case 'remove-files':
      return removeInstanceDir(pathsOf(deps.settings, t.id), deps.settings.host);
    default:
      return domainStep(lv, dom(), step);
  }
}

/** Runs the steps in order; the first failure propagates. Returns ms per step kind. */
export async function applyInstance(
  deps: ApplyDeps,
  target: ApplyTarget,
  steps: readonly Step[],
): Promise<StepTimes> {
  const times: StepTimes = {};
  const bases = new Map<string, string>();
  for (const step of steps) {
    const t0 = performance.now();
    deps.log.debug({ instanceId: target.id, step: step.kind, why: step.why }, 'instance step');
    await runStep(deps, target, step, bases);
    times[step.kind] = Math.round((times[step.kind] ?? 0) + performance.now() - t0);
  }
  return times;
}
