/**
 * Network namespaces through `ip netns`, in its own vocabulary.
 *
 * Invariant: names are checked (host/ip/names.ts) before any command is built; listing
 * is read-only and parses `ip -j`, never human-formatted output.
 */
import { stat } from 'node:fs/promises';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { assertNetnsName } from './names.ts';

export interface NetnsEntry {
  name: string;
  /** The namespace's nsid as seen from the caller's namespace, when it has one. */
  id?: number;
}

/** `ip -j netns list`, in the order ip prints them. */
export async function listNetns(runner: CommandRunner): Promise<NetnsEntry[]> {
  const { stdout } = await runner.run({ argv: ['ip', '-j', 'netns', 'list'] });
  if (stdout.trim() === '') return [];
  const parsed = JSON.parse(stdout) as unknown;
  if (!Array.isArray(parsed)) throw new Error('ip -j netns list: expected a JSON array');
  return parsed.map((e: { name?: unknown; id?: unknown }) => {
    if (typeof e?.name !== 'string') throw new Error('ip -j netns list: entry without a name');
    return typeof e.id === 'number' ? { name: e.name, id: e.id } : { name: e.name };
  });
}

/** iproute2's NETNS_RUN_DIR: `ip netns add NAME` bind-mounts the namespace here. */
export const NETNS_RUN_DIR = '/run/netns';

/**
 * Whether a named namespace exists: one stat of its mount point (what `ip netns` itself
 * reads), not a listing of every namespace, so a check costs the same with 2 or 2,000.
 */
export async function netnsExists(name: string): Promise<boolean> {
  return stat(`${NETNS_RUN_DIR}/${assertNetnsName(name)}`).then(
    () => true,
    () => false,
  );
}

/** `ip netns add NAME` (fails if it exists). */
export function netnsAddCommand(name: string): CommandSpec {
  return { argv: ['ip', 'netns', 'add', assertNetnsName(name)] };
}

/** `ip netns del NAME` (fails if it does not exist). Processes inside keep running. */
export function netnsDelCommand(name: string): CommandSpec {
  return { argv: ['ip', 'netns', 'del', assertNetnsName(name)] };
}
