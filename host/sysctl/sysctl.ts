/**
 * `sysctl` (procps) in its own vocabulary, for the one key a router namespace needs:
 * `net.ipv4.ip_forward`. Network sysctls belong to the namespace the process runs in, so
 * both commands run inside it (`ip netns exec`), and a fresh namespace starts at 0.
 *
 * Invariant: the namespace name is checked before it reaches a command; reading is
 * read-only (`sysctl -n`) and anything but `0` or `1` is an error, never a guess.
 */
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { assertNetnsName } from '../ip/names.ts';

const IP_FORWARD = 'net.ipv4.ip_forward';

/** Turns IPv4 forwarding on in `netns`. */
export function ipForwardCommand(netns: string): CommandSpec {
  return { argv: ['sysctl', '-w', `${IP_FORWARD}=1`], netns: assertNetnsName(netns) };
}

/** Whether IPv4 forwarding is on in `netns`. */
export async function observeIpForward(runner: CommandRunner, netns: string): Promise<boolean> {
  const { stdout } = await runner.run({
    argv: ['sysctl', '-n', IP_FORWARD],
    netns: assertNetnsName(netns),
  });
  const value = stdout.trim();
  if (value !== '0' && value !== '1')
    throw new Error(`sysctl -n ${IP_FORWARD} in ${netns} printed ${JSON.stringify(value)}`);
  return value === '1';
}
