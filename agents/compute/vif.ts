/**
 * Observing an instance's VIFs, read-only: its OVS ports (host/ovs/ports.ts findPorts, by
 * tap name and by vm-uuid) and, in ethernet mode, where each of its taps is (our netns,
 * ovs-vswitchd's, or nowhere). vif-plan.ts turns this into steps.
 *
 * Invariant: nothing here changes the host; rows are found only by this instance's uuid
 * or its own tap names, so a plan built from them touches no other instance's port.
 */
import type { CommandRunner } from '../../core/exec.ts';
import { listAddrs } from '../../host/ip/link.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { findPorts } from '../../host/ovs/ports.ts';
import type { DesiredNic } from './desired.ts';
import type { ObservedVifs, TapPlace } from './vif-plan.ts';

export interface VifDeps {
  runner: CommandRunner;
  ovsdb(): Promise<OvsdbClient>;
}

/** Where each tap of `nics` is: our netns, `netns` (ovs-vswitchd's), or nowhere. */
export async function observeTaps(
  runner: CommandRunner,
  netns: string,
  nics: readonly DesiredNic[],
): Promise<Record<string, TapPlace>> {
  const out: Record<string, TapPlace> = {};
  for (const n of nics) {
    if ((await listAddrs(runner, undefined, n.tap)) !== null) out[n.tap] = 'root';
    else if ((await listAddrs(runner, netns, n.tap)) !== null) out[n.tap] = 'vswitchd';
    else out[n.tap] = 'missing';
  }
  return out;
}

/** The instance's OVS ports, and (with `netns`: ethernet mode) where its taps are. */
export async function observeVifs(
  deps: VifDeps,
  q: { vmUuid: string; nics: readonly DesiredNic[]; netns?: string | undefined },
): Promise<ObservedVifs> {
  const ports = await findPorts(await deps.ovsdb(), {
    names: q.nics.map((n) => n.tap),
    vmUuid: q.vmUuid,
  });
  const taps = q.netns ? await observeTaps(deps.runner, q.netns, q.nics) : {};
  return { ports, taps };
}
