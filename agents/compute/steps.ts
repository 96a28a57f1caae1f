/**
 * The compute agent's own step kinds (data with payload, beside the kit's command, ovsdb,
 * file … steps of agents/lib/steps.ts) and the builders the plan uses. Pure.
 *
 * Invariants: a step carries everything its handler needs (the domain's uuid, the XML,
 * the paths, the images, the VIFs to plug, the report to send), so the executor decides
 * nothing; `plug-vifs` is the one phase step: the taps of an ethernet VIF exist only once
 * libvirt started the domain, so its handler observes them then and runs what vif-plan
 * plans from that (see apply.ts); `report` is the task's outcome, on success and on
 * failure, as the plan decided it.
 */
import type { InstanceImage } from '../../contracts/instances.ts';
import type { Step } from '../lib/steps.ts';
import { type DesiredInstance, type InstancePaths, imagesOf, type RootDisk } from './desired.ts';
import type { Phase, Report } from './report.ts';
import type { VifTarget } from './vif-plan.ts';

/** What a failed task reports, and whether its failure tears the instance down first. */
export interface OnFailure {
  report: Report;
  teardown: boolean;
}

export type ComputeStep =
  | {
      kind: 'image-fetch';
      images: InstanceImage[];
      /** What each image is to the instance ("kernel image K of image I"), for faults. */
      roles: Record<string, string>;
      why: string;
    }
  | {
      /** A rebuild: the old disk, kernel and ramdisk go, the image list names the new ones. */
      kind: 'reset-files';
      paths: InstancePaths;
      host: string;
      imageIds: string[];
      why: string;
    }
  | { kind: 'instance-dir'; paths: InstancePaths; host: string; imageIds: string[]; why: string }
  | {
      kind: 'disk';
      path: string;
      disk: Exclude<RootDisk, { kind: 'none' }>;
      base: string | null;
      why: string;
    }
  | { kind: 'copy'; from: string; to: string; why: string }
  | {
      /** The config drive: its files from the API, built into `disk.config` (config-drive.ts). */
      kind: 'config-drive';
      instanceId: string;
      paths: InstancePaths;
      host: string;
      why: string;
    }
  | { kind: 'touch'; path: string; why: string }
  | { kind: 'define'; xml: string; why: string }
  | { kind: 'start-paused'; uuid: string; why: string }
  | { kind: 'resume'; uuid: string; why: string }
  | { kind: 'pause'; uuid: string; why: string }
  | { kind: 'stop'; uuid: string; graceful: boolean; timeoutMs: number; why: string }
  | { kind: 'managed-save'; uuid: string; why: string }
  | { kind: 'discard-save'; uuid: string; why: string }
  | { kind: 'undefine'; uuid: string; why: string }
  | { kind: 'plug-vifs'; vifs: VifTarget; why: string }
  | { kind: 'wait-ports'; instanceId: string; timeoutMs: number; why: string }
  | { kind: 'remove-instance-dir'; paths: InstancePaths; host: string; why: string }
  | {
      /** Defines the attachment's CHAP secret (libvirt: uuid = attachment id) and sets its value. */
      kind: 'volume-secret';
      attachmentId: string;
      xml: string;
      value: string;
      why: string;
    }
  | {
      /**
       * Hot-plugs the volume's disk (LIVE|CONFIG when the domain is active, CONFIG when it
       * is off) unless the domain has it; its failure is the attachment's (ERROR, its
       * secret removed), never the instance's.
       */
      kind: 'volume-attach';
      uuid: string;
      attachmentId: string;
      volumeId: string;
      xml: string;
      secret: { xml: string; value: string };
      why: string;
    }
  | {
      /** Unplugs the disk, waits until the guest released it, removes the secret. */
      kind: 'volume-detach';
      uuid: string;
      /** null: a stray disk (its attachment is not in the spec): nothing to report. */
      attachmentId: string | null;
      volumeId: string;
      xml: string;
      timeoutMs: number;
      why: string;
    }
  | { kind: 'volume-secret-remove'; attachmentId: string; why: string }
  | {
      kind: 'report';
      report: Report;
      onFailure: OnFailure | null;
      /** Add the spawn timings measured by this apply. */
      timings: boolean;
      why: string;
    };

export type InstanceStep = Step | ComputeStep;

/** The spawn phase a step's time counts toward (`kumo:spawn_timings`). */
export function phaseOf(step: InstanceStep): Phase | null {
  switch (step.kind) {
    case 'image-fetch':
    case 'reset-files':
    case 'instance-dir':
    case 'disk':
    case 'copy':
    case 'config-drive':
    case 'touch':
      return 'image';
    case 'define':
    case 'start-paused':
      return 'define';
    case 'plug-vifs':
      return 'plug';
    case 'wait-ports':
      return 'wait_port';
    case 'resume':
      return 'boot';
    default:
      return null;
  }
}

/** What each image of a boot is, as a fault names it when the image service lacks it. */
export function imageRoles(d: DesiredInstance): Record<string, string> {
  const roles: Record<string, string> = {};
  if (d.rootDisk.kind === 'overlay') roles[d.rootDisk.image.id] = `image ${d.imageId}`;
  if (d.ramdisk) roles[d.ramdisk.id] = `ramdisk image ${d.ramdisk.id} of image ${d.imageId}`;
  if (d.kernel)
    roles[d.kernel.id] =
      d.kernel.id === d.imageId
        ? `kernel image ${d.imageId}`
        : `kernel image ${d.kernel.id} of image ${d.imageId}`;
  return roles;
}

const baseOf = (baseDir: string, image: InstanceImage) => `${baseDir}/${image.id}`;

/**
 * Files of a boot: images cached, the directory (this host's), disk, kernel, ramdisk, the
 * config drive, the console log.
 */
export function fileSteps(
  d: DesiredInstance,
  have: { disk: boolean; kernel: boolean; ramdisk: boolean; configDrive: boolean },
  s: { host: string; baseDir: string },
): ComputeStep[] {
  const p = d.paths;
  const images = imagesOf(d);
  const steps: ComputeStep[] = [
    { kind: 'image-fetch', images, roles: imageRoles(d), why: 'base images in the cache' },
    {
      kind: 'instance-dir',
      paths: p,
      host: s.host,
      imageIds: images.map((i) => i.id),
      why: "this host's instance directory",
    },
  ];
  const disk = d.rootDisk;
  if (disk.kind !== 'none' && !have.disk) {
    const base = disk.kind === 'overlay' ? baseOf(s.baseDir, disk.image) : null;
    steps.push({ kind: 'disk', path: p.disk, disk, base, why: `root disk (${disk.kind})` });
  }
  if (d.kernel && !have.kernel)
    steps.push({ kind: 'copy', from: baseOf(s.baseDir, d.kernel), to: p.kernel, why: 'kernel' });
  if (d.ramdisk && !have.ramdisk)
    steps.push({ kind: 'copy', from: baseOf(s.baseDir, d.ramdisk), to: p.ramdisk, why: 'ramdisk' });
  if (d.configDrive && !have.configDrive)
    steps.push({
      kind: 'config-drive',
      instanceId: d.id,
      paths: p,
      host: s.host,
      why: 'config drive (disk.config)',
    });
  steps.push({ kind: 'touch', path: p.console, why: 'console log' });
  return steps;
}
