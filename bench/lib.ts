/**
 * What several benches need: finding and stopping the dnsmasq processes a bench's own
 * DHCP agents started (they outlive their agents by design).
 *
 * Invariant: only processes whose pid file lies under the given directory are touched.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** dnsmasq processes whose pid file lies under `dir` (ours only), from /proc. */
export function dnsmasqUnder(dir: string): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.endsWith('dnsmasq')) continue;
    if (argv.some((a) => a.startsWith(`--pid-file=${dir}/`)))
      found.push({ pid: Number(name), argv });
  }
  return found;
}

/** SIGKILLs every dnsmasq found by dnsmasqUnder(dir). */
export function killDnsmasqUnder(dir: string): void {
  for (const { pid } of dnsmasqUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
