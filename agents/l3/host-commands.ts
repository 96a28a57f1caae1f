/**
 * The three host commands a router needs beyond `ip` and iptables, built here until the
 * NAT engineer's host modules land (host/arping garpCommand, host/conntrack
 * conntrackDeleteCommands, host/sysctl ipForwardCommand/observeIpForward — the same names
 * and signatures, so the merge swaps two imports and deletes this file).
 *
 * Invariant: every value is checked before it reaches an argv (device and namespace names
 * as host/ip/names.ts, addresses as one strictly formed IPv4 address, counts 1-60).
 */
import { parseIp } from '../../contracts/inet.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { assertDeviceName, assertNetnsName, InvalidNameError } from '../../host/ip/names.ts';

const IP_FORWARD = 'net.ipv4.ip_forward';

function v4(ip: string, field: string): string {
  if (parseIp(ip)?.version !== 4) throw new InvalidNameError(field, ip, 'must be one IPv4 address');
  return ip;
}

const nsOf = (netns: string | undefined) =>
  netns === undefined ? {} : { netns: assertNetnsName(netns) };

/** Gratuitous ARP: `arping -U -c N -I DEV IP` (about N seconds: one packet a second). */
export function garpCommand(o: { device: string; ip: string; count: number; netns?: string }) {
  if (!Number.isInteger(o.count) || o.count < 1 || o.count > 60)
    throw new InvalidNameError('arping count', o.count, 'must be an integer 1-60');
  const argv = ['arping', '-U', '-c', String(o.count), '-I', assertDeviceName(o.device)];
  return {
    argv: [...argv, v4(o.ip, 'arping ip')],
    ...nsOf(o.netns),
    timeoutMs: (o.count + 5) * 1000,
  } satisfies CommandSpec;
}

/** Connections to `ip` (`-d`) and NATed to it (`-q`, reply destination); none is exit 1. */
export function conntrackDeleteCommands(ip: string, netns?: string): CommandSpec[] {
  v4(ip, 'conntrack ip');
  return ['-d', '-q'].map((match) => ({
    argv: ['conntrack', '-D', '-f', 'ipv4', match, ip],
    ...nsOf(netns),
    okExitCodes: [1],
  }));
}

/** `sysctl -w net.ipv4.ip_forward=1` in the namespace. */
export function ipForwardCommand(netns: string): CommandSpec {
  return { argv: ['sysctl', '-w', `${IP_FORWARD}=1`], netns: assertNetnsName(netns) };
}

/** Whether IPv4 forwarding is on in the namespace (anything but 0 or 1 is an error). */
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
