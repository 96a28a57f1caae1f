/**
 * OpenFlow tables through `ovs-ofctl`, in its own vocabulary: replace a bridge's flows,
 * dump them. The switch is named by its management socket (`unix:<rundir>/<br>.mgmt`), so
 * several ovs-vswitchd (the lab's hosts) never mix up.
 *
 * Invariant: a bridge's table is replaced in one OpenFlow 1.4 atomic bundle: a packet
 * sees either the old set or the new one, never a half-written table.
 */
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';

const BRIDGE = /^[A-Za-z0-9_.-]{1,15}$/;

export function switchAddress(rundir: string, bridge: string): string {
  if (!BRIDGE.test(bridge)) throw new Error(`invalid bridge name ${JSON.stringify(bridge)}`);
  return `unix:${rundir}/${bridge}.mgmt`;
}

/** The command that makes `bridge`'s flow table exactly `flows` (ovs-ofctl flow syntax). */
export function replaceFlowsCommand(
  rundir: string,
  bridge: string,
  flows: readonly string[],
): CommandSpec {
  for (const f of flows)
    if (/[\n\r]/.test(f)) throw new Error(`flow contains a newline: ${JSON.stringify(f)}`);
  return {
    argv: [
      'ovs-ofctl',
      '-O',
      'OpenFlow14',
      '--bundle',
      'replace-flows',
      switchAddress(rundir, bridge),
      '-',
    ],
    stdin: `${flows.join('\n')}\n`,
    timeoutMs: 30_000,
  };
}

/** The flows as ovs-ofctl prints them, without statistics, sorted. */
export async function dumpFlows(
  runner: CommandRunner,
  rundir: string,
  bridge: string,
): Promise<string[]> {
  const { stdout } = await runner.run({
    argv: [
      'ovs-ofctl',
      '-O',
      'OpenFlow14',
      'dump-flows',
      '--no-stats',
      switchAddress(rundir, bridge),
    ],
  });
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('OFPST_FLOW') && !l.startsWith('NXST_FLOW'))
    .sort();
}
