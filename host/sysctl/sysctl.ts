/**
 * `sysctl` (procps) in its own vocabulary, for the keys a router namespace needs:
 * forwarding per IP family, `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding` (as
 * Neutron's RouterNamespace.create sets both). Network sysctls belong to the namespace the
 * process runs in, so both commands run inside it (`ip netns exec`), and a fresh namespace
 * starts at 0. One process sets or reads every family asked for.
 *
 * Invariant: the namespace name is checked before it reaches a command; the keys are this
 * module's constants; reading is read-only (`sysctl -n`) and anything but one `0` or `1`
 * per key is an error, never a guess. A kernel without IPv6 has no IPv6 key, so asking
 * for family 6 there fails with sysctl's own message instead of routing half the traffic.
 */
import type { IpVersion } from '../../contracts/inet.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { assertNetnsName } from '../ip/names.ts';

export const FORWARDING: Readonly<Record<IpVersion, string>> = {
  4: 'net.ipv4.ip_forward',
  6: 'net.ipv6.conf.all.forwarding',
};

const keysOf = (families: readonly IpVersion[]) =>
  [...new Set(families)].sort().map((f) => FORWARDING[f]);

/** Turns forwarding of `families` on in `netns`: one `sysctl -w`. */
export function ipForwardCommand(netns: string, families: readonly IpVersion[] = [4]): CommandSpec {
  return {
    argv: ['sysctl', '-w', ...keysOf(families).map((k) => `${k}=1`)],
    netns: assertNetnsName(netns),
  };
}

/** Whether forwarding of every one of `families` is on in `netns`: one `sysctl -n`. */
export async function observeIpForward(
  runner: CommandRunner,
  netns: string,
  families: readonly IpVersion[] = [4],
): Promise<boolean> {
  const keys = keysOf(families);
  const { stdout } = await runner.run({
    argv: ['sysctl', '-n', ...keys],
    netns: assertNetnsName(netns),
  });
  const values = stdout.trim().split('\n');
  if (values.length !== keys.length || values.some((v) => v !== '0' && v !== '1'))
    throw new Error(`sysctl -n ${keys.join(' ')} in ${netns} printed ${JSON.stringify(stdout)}`);
  return values.every((v) => v === '1');
}
