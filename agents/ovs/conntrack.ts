/**
 * The firewall's conntrack zones (zone = the filtered port's ofport, firewall.ts) once
 * their port is gone. As Neutron's driver does, a zone whose port left the firewall
 * (deleted, dead, port security off, or renumbered) is flushed after the flows that named
 * it are replaced: a later port given the same ofport inherits no connection of the old
 * one (which would let a reply in with no rule) and no drop mark.
 *
 * Invariant: only zones this process applied and saw leave are flushed, after the new
 * flows are in place; a failed flush is logged and costs nothing else (the zone's entries
 * would age out), so it never fails a sync.
 */
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import { flushZoneCommand, vswitchdControl } from '../../host/ovs/appctl.ts';

/** Zones (ofport → port id) of `before` that `now` does not give the same port. */
export function zonesLeft(
  before: ReadonlyMap<number, string>,
  now: ReadonlyMap<number, string>,
): number[] {
  return [...before]
    .filter(([zone, id]) => now.get(zone) !== id)
    .map(([zone]) => zone)
    .sort((a, b) => a - b);
}

/** Flushes each zone of `zones`; failures are logged, never thrown. */
export async function flushZones(
  runner: CommandRunner,
  log: Pick<Logger, 'warn' | 'info'>,
  rundir: string,
  zones: readonly number[],
) {
  for (const zone of zones) {
    try {
      await runner.run(flushZoneCommand(vswitchdControl(rundir), zone));
      log.info({ zone }, 'conntrack zone of a departed port flushed');
    } catch (e) {
      log.warn({ zone, err: (e as Error).message }, 'conntrack zone not flushed');
    }
  }
}
