/**
 * ovs-vswitchd's control socket through `ovs-appctl`, in its own vocabulary: find the
 * daemon's `.ctl` socket in a run directory, flush one conntrack zone of its datapath.
 * The socket is named explicitly, so several ovs-vswitchd (the lab's hosts) never mix up.
 *
 * Invariant: a zone outside 1..65535 is refused before any command exists; the datapath
 * is not named (OVS 3.1 would read a name as a tuple field): the daemon's one datapath is
 * the bridges' own.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandSpec } from '../../core/exec.ts';

/** ovs-vswitchd's control socket in `rundir`: `ovs-vswitchd.ctl`, else by its pidfile. */
export function vswitchdControl(rundir: string): string {
  const fixed = join(rundir, 'ovs-vswitchd.ctl');
  if (existsSync(fixed)) return fixed;
  const pid = readFileSync(join(rundir, 'ovs-vswitchd.pid'), 'utf8').trim();
  if (!/^\d+$/.test(pid)) throw new Error(`bad ovs-vswitchd pidfile in ${rundir}`);
  return join(rundir, `ovs-vswitchd.${pid}.ctl`);
}

/** `dpctl/flush-conntrack zone=N` against the daemon behind `control`. */
export function flushZoneCommand(control: string, zone: number): CommandSpec {
  if (!Number.isInteger(zone) || zone < 1 || zone > 65535) throw new Error(`bad zone ${zone}`);
  return {
    argv: ['ovs-appctl', '-t', control, 'dpctl/flush-conntrack', `zone=${zone}`],
    timeoutMs: 10_000,
  };
}
