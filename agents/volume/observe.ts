/**
 * What the host has for one volume or snapshot: its data object's size (the backend)
 * and the volume's target found by its iqn in `tgtadm --op show` (tid, LUN 1's backing
 * store, bound accounts, ACL, connected sessions), and whether its CHAP account exists;
 * the target's backing store and the desired one with symlinks resolved (realpath), so
 * the plan compares the files, not the spellings. Read-only.
 *
 * Invariant: a target is ours only by its iqn (`iqn.2010-10.org.openstack:volume-<uuid>`)
 * and a data object only by its name (backend.ts OWNED_NAME): what `ownedIds` lists for a
 * resync is exactly that, so a target or file of anyone else is never reconciled.
 */
import { realpath } from 'node:fs/promises';
import { IQN_PREFIX, TARGET_LUN } from '../../contracts/volume.ts';
import { type DataBackend, OWNED_NAME } from './backend.ts';
import type { DesiredSnapshot, DesiredVolume } from './desired.ts';
import type { ObservedObject, ObservedTarget } from './plan.ts';
import type { Tgt, TgtTarget } from './tgt.ts';

export interface ObserveDeps {
  backend: DataBackend;
  tgt: Tgt;
}

/** `path` with symlinks resolved; itself when it cannot be (missing, unreadable). */
const resolved = (path: string) => realpath(path).catch(() => path);

async function asObserved(t: TgtTarget): Promise<ObservedTarget> {
  const backing = t.luns.find((l) => l.lun === TARGET_LUN)?.backingStore ?? null;
  return {
    tid: t.tid,
    iqn: t.iqn,
    backing,
    backingReal: backing === null ? null : await resolved(backing),
    accounts: [...t.accounts],
    acl: [...t.acl],
    sessions: t.sessions.length,
    sessionFrom: t.sessions.map((n) => n.initiator),
    lunBytes: t.luns.find((l) => l.lun === TARGET_LUN)?.sizeBytes ?? null,
  };
}

function userOf(d: DesiredVolume): string | null {
  return d.state === 'present' ? (d.target?.user ?? null) : d.user;
}

export async function observeVolume(deps: ObserveDeps, d: DesiredVolume): Promise<ObservedObject> {
  const sizeBytes = await deps.backend.sizeOf(d.name);
  const iqn = `${IQN_PREFIX}${d.name}`;
  const found = (await deps.tgt.show()).find((t) => t.iqn === iqn);
  const user = userOf(d);
  const accountExists = user !== null && (await deps.tgt.accounts()).includes(user);
  const want = d.state === 'present' ? d.target : null;
  return {
    sizeBytes,
    target: found ? await asObserved(found) : null,
    accountExists,
    dataReal: want ? await resolved(want.backing) : null,
  };
}

export async function observeSnapshot(
  deps: ObserveDeps,
  d: DesiredSnapshot,
): Promise<ObservedObject> {
  const sizeBytes = await deps.backend.sizeOf(d.name);
  return { sizeBytes, target: null, accountExists: false, dataReal: null };
}

const TARGET = new RegExp(`^${IQN_PREFIX.replaceAll('.', '\\.')}volume-([0-9a-f-]{36})$`);

/** The volume and snapshot ids this host holds anything of (data objects, targets). */
export async function ownedIds(
  deps: ObserveDeps,
): Promise<{ volumes: Set<string>; snapshots: Set<string> }> {
  const volumes = new Set<string>();
  const snapshots = new Set<string>();
  for (const name of await deps.backend.list()) {
    const m = OWNED_NAME.exec(name);
    if (m) (m[1] === 'volume' ? volumes : snapshots).add(m[2] as string);
  }
  for (const t of await deps.tgt.show()) {
    const m = TARGET.exec(t.iqn);
    if (m && OWNED_NAME.test(`volume-${m[1]}`)) volumes.add(m[1] as string);
  }
  return { volumes, snapshots };
}
