/**
 * dnsmasq's lease database (`--dhcp-leasefile`) and the dnsmasq-utils tools that make a
 * running dnsmasq forget one lease: `dhcp_release` (DHCPv4) and `dhcp_release6` (DHCPv6).
 *
 * Why: SIGHUP makes dnsmasq re-read its hosts file but not drop leases, and dnsmasq never
 * hands an address that is leased to one client to another one before that lease expires
 * (`--dhcp-range … 86400s`). A port deleted, or whose MAC or IP changed, keeps blocking its
 * address for a day unless its lease is released, as Neutron's DHCP agent does.
 *
 * The file, as dnsmasq 2.90 writes it (one record per line, fields split by one space):
 * IPv4 `<expiry> <mac> <ip> <hostname|*> <client-id|*>`; once, `duid <server duid>`; IPv6
 * `<expiry> <[T]iaid> <ip> <hostname|*> <client duid|*>`.
 *
 * Invariants: pure, except `readLeaseFile`. The file is untrusted input: every field that
 * can reach an argv passes a strict pattern first (an Ethernet MAC of six lowercase hex
 * bytes, strictly formed IP text made canonical, colon-separated hex bytes for client ids
 * and DUIDs, a decimal IAID below 2^32), and a line that fails is dropped and reported by
 * number, never passed on: a corrupt or hostile file can at worst keep a lease unreleased.
 * `unusedLeases` returns only leases dnsmasq can actually release (inside a subnet the
 * DHCP interface has an address in, IPv6 only with both DUIDs and a non-temporary IAID), so
 * a lease it cannot release is never planned again and again.
 */
import { readFile } from 'node:fs/promises';
import { ValidationError } from '../../contracts/schema.ts';
import type { CommandSpec } from '../../core/exec.ts';
import { canonicalIp, type IpVersion, ipVersion, networkAddress, parseCidr } from '../ip/inet.ts';

export interface Lease4 {
  version: 4;
  mac: string;
  ip: string;
  clientId: string | null;
}

export interface Lease6 {
  version: 6;
  iaid: number;
  /** An IA_TA address (`T` prefix): dhcp_release6 releases IA_NA addresses only. */
  temporary: boolean;
  ip: string;
  duid: string | null;
}

export type Lease = Lease4 | Lease6;

export interface LeaseFile {
  leases: Lease[];
  /** dnsmasq's own DUID (the `duid` line), needed to release IPv6 leases. */
  serverDuid: string | null;
  /** Lines that were dropped, 1-based, with the reason. */
  rejected: { line: number; reason: string }[];
}

/** A (MAC, address) pair the hosts file grants. */
export interface HostEntry {
  mac: string;
  ip: string;
}

export interface LeaseScope {
  /** What the new hosts file grants. */
  hosts: readonly HostEntry[];
  /** What the hosts file on disk granted before this change (null: none). */
  previousHosts: readonly HostEntry[] | null;
  /**
   * The DHCP interface's CIDRs on subnets dnsmasq has a DHCP range for: it releases only
   * there (a lease elsewhere, say of a subnet whose DHCP was turned off, stays until it
   * expires whatever is sent, and blocks nothing).
   */
  served: readonly string[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** Client ids are at most 255 bytes (an option's length), DUIDs at most 130. */
const CLIENT_ID = /^[0-9a-f]{2}(:[0-9a-f]{2}){0,254}$/;
const DUID = /^[0-9a-f]{2}(:[0-9a-f]{2}){1,129}$/;
const EXPIRY = /^\d{1,20}$/;
const IAID = /^(T?)(\d{1,10})$/;
const DEVICE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const MAX_LINE = 1024;
/** dhcp_release6's exit status when dnsmasq answers NoBinding: the lease is gone already. */
export const RELEASE6_NO_BINDING = 3;

const strictIp = (text: string): { ip: string; version: IpVersion } | null => {
  const version = ipVersion(text);
  return version === null ? null : { ip: canonicalIp(text), version };
};

function parseRecord(fields: string[]): Lease | string {
  const [expiry, link, address, , id] = fields as [string, string, string, string, string];
  if (!EXPIRY.test(expiry)) return 'bad expiry time';
  const addr = strictIp(address);
  if (addr === null) return 'bad IP address';
  if (addr.version === 4) {
    if (!MAC.test(link)) return 'not an Ethernet MAC address';
    if (id !== '*' && !CLIENT_ID.test(id)) return 'bad client id';
    return { version: 4, mac: link, ip: addr.ip, clientId: id === '*' ? null : id };
  }
  const iaid = IAID.exec(link);
  if (iaid === null || Number(iaid[2]) > 0xffffffff) return 'bad IAID';
  if (id !== '*' && !DUID.test(id)) return 'bad client DUID';
  return {
    version: 6,
    iaid: Number(iaid[2]),
    temporary: iaid[1] === 'T',
    ip: addr.ip,
    duid: id === '*' ? null : id,
  };
}

function parseLine(raw: string): Lease | { serverDuid: string } | string {
  if (raw.length > MAX_LINE) return 'line too long';
  const fields = raw.split(' ');
  if (fields[0] === 'duid') {
    const duid = fields[1] ?? '';
    return fields.length === 2 && DUID.test(duid) ? { serverDuid: duid } : 'bad server DUID';
  }
  if (fields.length !== 5) return `${fields.length} fields, expected 5`;
  return parseRecord(fields);
}

export function parseLeases(text: string): LeaseFile {
  const file: LeaseFile = { leases: [], serverDuid: null, rejected: [] };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '') continue;
    const parsed = parseLine(lines[i] as string);
    if (typeof parsed === 'string') file.rejected.push({ line: i + 1, reason: parsed });
    else if ('version' in parsed) file.leases.push(parsed);
    else if (file.serverDuid === null) file.serverDuid = parsed.serverDuid;
    else file.rejected.push({ line: i + 1, reason: 'a second server DUID' });
  }
  return file;
}

/** The leases file at `path`; null when dnsmasq has not written one yet. */
export async function readLeaseFile(path: string): Promise<LeaseFile | null> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  return text === null ? null : parseLeases(text);
}

/** The (MAC, address) pairs of a hosts file as render.ts writes it; other lines are skipped. */
export function hostEntries(hostsFile: string): HostEntry[] {
  const out: HostEntry[] = [];
  for (const line of hostsFile.split('\n')) {
    const fields = line.split(',');
    const mac = fields[0] ?? '';
    const addr = strictIp((fields[fields.length - 1] ?? '').replace(/^\[(.*)\]$/, '$1'));
    if (fields.length >= 2 && MAC.test(mac) && addr !== null) out.push({ mac, ip: addr.ip });
  }
  return out;
}

function servedBy(served: readonly string[], ip: string): boolean {
  return served.some((text) => {
    const c = parseCidr(text);
    return (
      c !== null &&
      ipVersion(ip) === c.version &&
      networkAddress({ ...c, address: ip }) === networkAddress(c)
    );
  });
}

const macOf = (hosts: readonly HostEntry[] | null, ip: string) =>
  hosts?.find((h) => h.ip === ip)?.mac;

/**
 * The leases no host entry accounts for any more, that dnsmasq can release. IPv4: the
 * lease's (MAC, address) pair is not granted. IPv6 leases name a DUID, not a MAC: released
 * when the address is not granted at all, or when the previous hosts file gave it to
 * another MAC than the new one does.
 */
export function unusedLeases(file: LeaseFile, scope: LeaseScope): Lease[] {
  const seen = new Set<string>();
  return file.leases.filter((lease) => {
    const key = `${lease.ip} ${lease.version === 4 ? lease.mac : lease.duid}`;
    if (seen.has(key) || !servedBy(scope.served, lease.ip)) return false;
    seen.add(key);
    if (lease.version === 4)
      return !scope.hosts.some((h) => h.ip === lease.ip && h.mac === lease.mac);
    if (file.serverDuid === null || lease.duid === null || lease.temporary) return false;
    const now = macOf(scope.hosts, lease.ip);
    const before = macOf(scope.previousHosts, lease.ip);
    return now === undefined || (before !== undefined && before !== now);
  });
}

/**
 * The command that makes the dnsmasq serving `device` (in `netns`) drop `lease`. dhcp_release
 * sends a DHCPRELEASE and exits 0 whatever happens; dhcp_release6 waits for the answer, and
 * NoBinding (the lease is gone already) counts as success.
 */
export function releaseCommand(
  device: string,
  lease: Lease,
  serverDuid: string | null,
  netns?: string,
): CommandSpec {
  if (typeof device !== 'string' || !DEVICE.test(device))
    throw new ValidationError('device', `must be a device name, got ${JSON.stringify(device)}`);
  const addr = strictIp(lease.ip);
  if (addr === null || addr.version !== lease.version)
    throw new ValidationError('lease.ip', `must be an IPv${lease.version} address`);
  const where = netns === undefined ? {} : { netns };
  if (lease.version === 4) {
    if (!MAC.test(lease.mac)) throw new ValidationError('lease.mac', 'must be an Ethernet MAC');
    if (lease.clientId !== null && !CLIENT_ID.test(lease.clientId))
      throw new ValidationError('lease.clientId', 'must be colon-separated hex bytes');
    const id = lease.clientId === null ? [] : [lease.clientId];
    return { argv: ['dhcp_release', device, addr.ip, lease.mac, ...id], ...where };
  }
  if (serverDuid === null || !DUID.test(serverDuid))
    throw new ValidationError('serverDuid', 'must be colon-separated hex bytes');
  if (lease.duid === null || !DUID.test(lease.duid))
    throw new ValidationError('lease.duid', 'must be colon-separated hex bytes');
  if (!Number.isInteger(lease.iaid) || lease.iaid < 0 || lease.iaid > 0xffffffff || lease.temporary)
    throw new ValidationError('lease.iaid', 'must be the IAID of a non-temporary address');
  const argv = ['dhcp_release6', '--iface', device, '--ip', addr.ip, '--client-id', lease.duid];
  argv.push('--server-id', serverDuid, '--iaid', String(lease.iaid));
  return { argv, ...where, okExitCodes: [RELEASE6_NO_BINDING] };
}
