/**
 * The only names and sizes Kumo hands to LVM, and how Kumo's names map to LV names.
 *
 * Invariants: an LV name reaching lvcreate/lvextend/lvremove is `volume-<uuid>`,
 * `_snapshot-<uuid>` or the group's thin pool `<vg>-pool`, checked before anything runs;
 * a size is a whole number of GiB in 1..MAX_VOLUME_GB. LVM reserves names starting with
 * `snapshot` ("Names starting "snapshot" are reserved"), so a snapshot's LV is
 * `_snapshot-<uuid>`, as Cinder's LVM driver names it (`_escape_snapshot`); callers
 * speak Kumo's names (contracts/volume.ts) and `lvName` / `kumoName` translate.
 */
import { UUID } from '../../contracts/schema.ts';
import { MAX_VOLUME_GB } from '../../contracts/volume.ts';
import { LvmError } from './context.ts';

const UUID_BODY = UUID.source.slice(1, -1);
const KUMO_NAME = new RegExp(`^(volume|snapshot)-${UUID_BODY}$`);
const LV_NAME = new RegExp(`^(volume|_snapshot)-${UUID_BODY}$`);

export type KumoLvKind = 'volume' | 'snapshot';

/** The thin pool of a volume group (Cinder's default: `<vg>-pool`). */
export const thinPoolName = (vg: string) => `${vg}-pool`;

/** `volume-<uuid>` → itself, `snapshot-<uuid>` → `_snapshot-<uuid>`; anything else throws. */
export function lvName(name: string): string {
  const m = KUMO_NAME.exec(name);
  if (!m) throw invalidName(name);
  return m[1] === 'snapshot' ? `_${name}` : name;
}

/** An LV name back to Kumo's (`_snapshot-x` → `snapshot-x`); null for LVs not Kumo's. */
export function kumoName(lv: string): { kind: KumoLvKind; id: string; name: string } | null {
  const m = LV_NAME.exec(lv);
  if (!m) return null;
  const kind: KumoLvKind = m[1] === 'volume' ? 'volume' : 'snapshot';
  const id = lv.slice(lv.indexOf('-') + 1);
  return { kind, id, name: `${kind}-${id}` };
}

/** Kumo's name of a volume (not a snapshot), checked. */
export function volumeLvName(name: string): string {
  if (!name.startsWith('volume-')) throw invalidName(name, 'a volume-<uuid>');
  return lvName(name);
}

/** Kumo's name of a snapshot, checked and mapped to its LV name. */
export function snapshotLvName(name: string): string {
  if (!name.startsWith('snapshot-')) throw invalidName(name, 'a snapshot-<uuid>');
  return lvName(name);
}

export function checkSizeGb(sizeGb: number, what = 'size'): number {
  if (!Number.isInteger(sizeGb) || sizeGb < 1 || sizeGb > MAX_VOLUME_GB)
    throw new LvmError(
      'invalid',
      `${what} must be a whole number of GiB in 1..${MAX_VOLUME_GB}, got ${JSON.stringify(sizeGb)}`,
    );
  return sizeGb;
}

function invalidName(name: string, expected = 'volume-<uuid> or snapshot-<uuid>') {
  return new LvmError('invalid', `LV name must be ${expected}, got ${JSON.stringify(name)}`);
}
