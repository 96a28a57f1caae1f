/**
 * The step builders and domain predicates the compute plans share (plan.ts,
 * plan-rebuild.ts). Pure.
 *
 * Invariant: a builder carries everything its handler needs (the uuid, the timeouts from
 * the settings, the VIFs to plug), so plans only choose and order steps.
 */
import { DomainState } from '../../host/libvirt/enums.ts';
import type { ObservedDomain } from './observe.ts';
import type { ComputeStep } from './steps.ts';
import type { InstanceTarget } from './target.ts';
import type { VifTarget } from './vif-plan.ts';

const S = DomainState;
export const ours = (d: ObservedDomain | null, host: string) => d !== null && d.meta?.host === host;
export const running = (d: ObservedDomain | null) =>
  d !== null && (d.state === S.RUNNING || d.state === S.BLOCKED);
export const paused = (d: ObservedDomain | null) => d !== null && d.state === S.PAUSED;
export const saved = (d: ObservedDomain | null) =>
  d !== null && d.state === S.SHUTOFF && d.managedSave;

export function vifTarget(t: InstanceTarget): VifTarget {
  const s = t.settings;
  return {
    vmUuid: t.id,
    bridge: s.intBridge,
    ...(s.vswitchdNetns ? { netns: s.vswitchdNetns } : {}),
    nics: t.nics,
  };
}

export const plugVifs = (t: InstanceTarget, why: string): ComputeStep => ({
  kind: 'plug-vifs',
  vifs: vifTarget(t),
  why,
});
export const waitPorts = (t: InstanceTarget, why: string): ComputeStep => ({
  kind: 'wait-ports',
  instanceId: t.id,
  timeoutMs: t.settings.vifPluggingTimeoutMs,
  why,
});
export const resume = (t: InstanceTarget, why = 'run the guest'): ComputeStep => ({
  kind: 'resume',
  uuid: t.id,
  why,
});
export const stop = (t: InstanceTarget, graceful: boolean, why: string): ComputeStep => ({
  kind: 'stop',
  uuid: t.id,
  graceful,
  timeoutMs: t.settings.shutdownTimeoutMs,
  why,
});
