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

export interface BenchRun {
  main(): Promise<void>;
  /** Removes everything the bench made; runs once, after success, failure or Ctrl-C. */
  cleanup(): Promise<void>;
  /** Synchronous last resort on exit: SIGKILL what must not outlive the bench. */
  lastly?(): void;
  /** Diagnostics after a failure (daemon log tails). */
  onFailure?(): Promise<void> | void;
}

/**
 * Runs a bench: Ctrl-C cleans up and exits 130; a failure prints its stack and the
 * bench's diagnostics and sets exit status 1; cleanup always runs, once.
 */
export async function runBench(b: BenchRun): Promise<void> {
  let interrupted = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => {
    cleaning ??= b.cleanup();
    return cleaning;
  };
  process.on('SIGINT', () => {
    interrupted = true;
    console.error('interrupted; cleaning up');
    void cleanup().finally(() => process.exit(130));
  });
  if (b.lastly) process.on('exit', b.lastly);
  try {
    await b.main();
  } catch (e) {
    // After Ctrl-C the failure is ours (processes stopped under us); the SIGINT handler exits.
    if (interrupted) await new Promise(() => {});
    console.error(`bench failed: ${(e as Error).stack ?? e}`);
    await b.onFailure?.();
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

/** The last `n` lines of a log file (those `keep` accepts), or a note that it has none. */
export function logTail(path: string, n = 15, keep: (line: string) => boolean = () => true) {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').filter(keep).slice(-n).join('\n');
  } catch {
    return '(no log yet)';
  }
}
