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
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';

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

/** ovs-vswitchd's control socket in `rundir`: `ovs-vswitchd.ctl`, else by its pidfile. */
export function vswitchdControl(rundir: string): string {
  const fixed = join(rundir, 'ovs-vswitchd.ctl');
  if (existsSync(fixed)) return fixed;
  const pid = readFileSync(join(rundir, 'ovs-vswitchd.pid'), 'utf8').trim();
  if (!/^\d+$/.test(pid)) throw new Error(`bad ovs-vswitchd pidfile in ${rundir}`);
  return join(rundir, `ovs-vswitchd.${pid}.ctl`);
}

/** ovs-vswitchd's one datapath (the bridges' datapath_type) is the one flushed. */
export function flushZoneCommand(control: string, zone: number): CommandSpec {
  if (!Number.isInteger(zone) || zone < 1 || zone > 65535) throw new Error(`bad zone ${zone}`);
  return {
    argv: ['ovs-appctl', '-t', control, 'dpctl/flush-conntrack', `zone=${zone}`],
    timeoutMs: 10_000,
  };
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
