/**
 * `conntrack` (conntrack-tools) in its own vocabulary: forgetting the connections of an
 * address, so that a disassociated floating IP's open connections stop instead of going on
 * through the NAT entries they were set up with.
 *
 * Two deletions, as Neutron's ip_lib.delete_conntrack_state: `-D -d IP` (connections whose
 * original destination is IP: traffic that came in to the floating IP, DNATed) and `-D -q
 * IP` (`--reply-dst`: connections whose reply goes to IP, i.e. traffic SNATed to the
 * floating IP on its way out; their original source is the fixed IP, so `-s IP` would not
 * find them). conntrack exits 1 with "0 flow entries have been deleted." when nothing
 * matched, which is success here; exit 1 is also its code for a failed kernel operation,
 * which cannot be told apart by the exit code alone. Parameter problems exit 2 and fail.
 *
 * Invariant: the address is one strictly formed IPv4 address and the namespace a valid
 * name before anything reaches the argv.
 */
import { parseIp } from '../../contracts/inet.ts';
import type { CommandSpec } from '../../core/exec.ts';
import { assertNetnsName, InvalidNameError } from '../ip/names.ts';

/** The commands that delete every IPv4 connection to or NATed to `ip` (see above). */
export function conntrackDeleteCommands(ip: string, netns?: string): CommandSpec[] {
  const parsed = typeof ip === 'string' ? parseIp(ip) : undefined;
  if (parsed === undefined || parsed.version !== 4)
    throw new InvalidNameError('conntrack ip', ip, 'must be one IPv4 address');
  const ns = netns === undefined ? {} : { netns: assertNetnsName(netns) };
  return ['-d', '-q'].map((match) => ({
    argv: ['conntrack', '-D', '-f', 'ipv4', match, ip],
    ...ns,
    okExitCodes: [1],
  }));
}
