/**
 * `arping` (iputils-arping, Debian 12's `/usr/bin/arping`) in its own vocabulary: the
 * gratuitous ARP a router sends when an address appears on one of its devices, so that
 * neighbours drop a stale MAC for it (after a failover or a floating IP move).
 *
 * `arping -U -c COUNT -I DEV IP`: unsolicited mode, sender and target both IP; iputils
 * exits 0 once it has sent COUNT packets (replies are not expected), one a second, so the
 * command takes about COUNT seconds; it fails (exit 2) when IP is not on DEV.
 *
 * Invariant: every value is checked before it reaches the argv (device and namespace names
 * as host/ip/names.ts, the address as one strictly formed IPv4 address, the count an
 * integer 1-60), so nothing can become an option or a second word.
 */
import { parseIp } from '../../contracts/inet.ts';
import type { CommandSpec } from '../../core/exec.ts';
import { assertDeviceName, assertNetnsName, InvalidNameError } from '../ip/names.ts';

export const MAX_GARP_COUNT = 60;

/** The GARP for `ip` on `device` (in `netns`); validated, see the module comment. */
export function garpCommand(o: {
  device: string;
  ip: string;
  count: number;
  netns?: string;
}): CommandSpec {
  assertDeviceName(o.device, 'arping device');
  const ip = typeof o.ip === 'string' ? parseIp(o.ip) : undefined;
  if (ip === undefined || ip.version !== 4)
    throw new InvalidNameError('arping ip', o.ip, 'must be one IPv4 address');
  if (!Number.isInteger(o.count) || o.count < 1 || o.count > MAX_GARP_COUNT)
    throw new InvalidNameError('arping count', o.count, `must be an integer 1-${MAX_GARP_COUNT}`);
  return {
    argv: ['arping', '-U', '-c', String(o.count), '-I', o.device, o.ip],
    ...(o.netns === undefined ? {} : { netns: assertNetnsName(o.netns) }),
    timeoutMs: (o.count + 5) * 1000,
  };
}
