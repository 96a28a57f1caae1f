/**
 * dnsmasq's files on disk, in the network's state directory.
 *
 * Invariants: each file is replaced atomically (write a temporary file in the same
 * directory, fsync, rename over, fsync the directory), so dnsmasq re-reading on SIGHUP
 * sees either the old or the new file, never a torn one. `writeNetworkFiles` renders and
 * checks everything before it touches the disk: a bad value writes nothing at all.
 * Directories are 0755 and files 0644 on purpose: dnsmasq drops to `nobody` after start
 * and re-reads these files as that user on SIGHUP (a 0700 state dir = no hosts = no leases).
 */
import { mkdir, readFile } from 'node:fs/promises';
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { dnsmasqPaths } from './argv.ts';
import type { RenderOptions } from './check.ts';
import { type DnsmasqFiles, renderFiles } from './render.ts';

/** Files as found on disk: null where a file is missing. */
export type StoredFiles = { [K in keyof DnsmasqFiles]: string | null };

const KEYS = ['hosts', 'addnHosts', 'opts'] as const;

/** Writes the three files into `stateDir` (created if needed); returns which changed. */
export async function writeDnsmasqFiles(
  stateDir: string,
  files: DnsmasqFiles,
): Promise<(keyof DnsmasqFiles)[]> {
  const paths = dnsmasqPaths(stateDir);
  await mkdir(paths.dir, { recursive: true, mode: 0o755 });
  const changed: (keyof DnsmasqFiles)[] = [];
  for (const k of KEYS) if (await writeFileAtomic(paths[k], files[k])) changed.push(k);
  return changed;
}

/** Renders `net` (throwing before any write on a bad network attribute) and writes its files. */
export async function writeNetworkFiles(
  net: DhcpNetwork,
  stateDir: string,
  opts: RenderOptions = {},
): Promise<{ files: DnsmasqFiles; changed: (keyof DnsmasqFiles)[] }> {
  const files = renderFiles(net, opts);
  dnsmasqPaths(stateDir);
  return { files, changed: await writeDnsmasqFiles(stateDir, files) };
}

/** The files currently in `stateDir` (null for each missing one). */
export async function readDnsmasqFiles(stateDir: string): Promise<StoredFiles> {
  const paths = dnsmasqPaths(stateDir);
  const read = (p: string) =>
    readFile(p, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
  const [hosts, addnHosts, opts] = await Promise.all(KEYS.map((k) => read(paths[k])));
  return { hosts: hosts ?? null, addnHosts: addnHosts ?? null, opts: opts ?? null };
}
