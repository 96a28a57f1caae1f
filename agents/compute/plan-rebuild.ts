/**
 * The steps of a rebuild (Nova's rebuild_instance with the libvirt driver). Pure.
 *
 * Invariants: the new image is in the cache before anything of the old one is touched,
 * so an image that cannot be had fails the rebuild with the guest's disk intact; the
 * domain is destroyed (not shut down: Nova's rebuild powers off), its files are made
 * again from the new image with the image list naming it (the config drive, when it has
 * one, is made again from the API's current data), and the domain is defined with
 * the new XML; a stopped server stays stopped, any other is started paused, plugged and
 * resumed like a boot.
 */
import { imagesOf } from './desired.ts';
import { isActive } from './domain-state.ts';
import type { ObservedInstance } from './observe.ts';
import { plugVifs, resume, saved, stop } from './plan-steps.ts';
import { type ComputeStep, fileSteps } from './steps.ts';
import { type InstanceTarget, taskResult } from './target.ts';

/**
 * Nova's rebuild: the domain destroyed, the root disk (and kernel, ramdisk) made again
 * from the new image once it is cached, the domain defined with the new XML, and started
 * unless the server was stopped (a stopped server is rebuilt stopped).
 */
export function rebuildSteps(t: InstanceTarget, o: ObservedInstance): ComputeStep[] {
  const d = t.instance;
  if (!d) return [];
  const dom = o.domain;
  const [fetch, ...files] = fileSteps(
    d,
    { disk: false, kernel: false, ramdisk: false, configDrive: false },
    t.settings,
  );
  const reset: ComputeStep = {
    kind: 'reset-files',
    paths: t.paths,
    host: t.settings.host,
    imageIds: imagesOf(d).map((i) => i.id),
    why: "the old image's files go",
  };
  const steps: ComputeStep[] = [
    ...(fetch ? [fetch] : []),
    ...(isActive(dom) ? [stop(t, false, 'destroy for the rebuild')] : []),
    ...(saved(dom) ? [{ kind: 'discard-save', uuid: t.id, why: 'rebuild afresh' } as const] : []),
    reset,
    ...files,
    { kind: 'define', xml: d.xml, why: 'domain XML of the new image' },
  ];
  if (taskResult(t) === 'stopped') return steps;
  return [
    ...steps,
    { kind: 'start-paused', uuid: t.id, why: 'start the rebuilt guest paused' },
    plugVifs(t, 'VIFs of the started domain'),
    resume(t),
  ];
}
