/**
 * What a network's dnsmasq needs after its files or interface changed: nothing, a SIGHUP
 * (dnsmasq re-reads hosts, addn_hosts and opts), or a restart.
 *
 * Invariants: pure. A restart is needed when the interface's addresses changed (with
 * --bind-interfaces dnsmasq binds to the addresses present at start) or the command line
 * changed (new or removed subnets, MTU, lease time); a reload when only file contents
 * changed; a start when no dnsmasq runs for the network. Address lists compare as sets of
 * canonical CIDRs, so order and spelling (`2001:DB8::1/64`) do not cause restarts.
 */
import { canonicalIp, parseCidr } from '../ip/inet.ts';
import type { StoredFiles } from './files.ts';
import type { DnsmasqFiles } from './render.ts';

export type ReloadAction = 'none' | 'start' | 'reload' | 'restart';

export interface DnsmasqActual {
  running: boolean;
  /** Files on disk before this change (null: never written). */
  files: StoredFiles | null;
  /** CIDRs on the served interface before the change. */
  addresses: readonly string[];
  /** The running process's argv (from /proc/<pid>/cmdline), when known. */
  argv?: readonly string[];
}

export interface DnsmasqDesired {
  files: DnsmasqFiles;
  addresses: readonly string[];
  argv?: readonly string[];
}

export interface ReloadPlan {
  action: ReloadAction;
  why: string[];
}

function addressSet(list: readonly string[]): string[] {
  return [
    ...new Set(
      list.map((a) => {
        const c = parseCidr(a);
        return c === null ? a : `${canonicalIp(c.address)}/${c.prefix}`;
      }),
    ),
  ].sort();
}

export function planReload(actual: DnsmasqActual, desired: DnsmasqDesired): ReloadPlan {
  if (!actual.running) return { action: 'start', why: ['dnsmasq is not running'] };
  const why: string[] = [];
  const was = addressSet(actual.addresses);
  const will = addressSet(desired.addresses);
  if (was.join(' ') !== will.join(' '))
    why.push(`interface addresses changed: ${was.join(' ') || '-'} → ${will.join(' ') || '-'}`);
  if (
    actual.argv !== undefined &&
    desired.argv !== undefined &&
    actual.argv.join('\0') !== desired.argv.join('\0')
  )
    why.push('command line changed');
  if (why.length > 0) return { action: 'restart', why };
  for (const k of ['hosts', 'addnHosts', 'opts'] as const)
    if (actual.files?.[k] !== desired.files[k]) why.push(`${k} changed`);
  return why.length > 0 ? { action: 'reload', why } : { action: 'none', why };
}
