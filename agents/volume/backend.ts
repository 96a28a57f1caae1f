/**
 * What the volume agent needs of a data backend, whichever it is (files or LVM): the
 * objects it holds by name, their sizes, and the data changes the plan's steps name.
 *
 * Invariants: names are `volume-<uuid>` / `snapshot-<uuid>` (contracts/volume.ts) and
 * nothing else is listed, made or removed; `list` and `sizeOf` are read-only; sizes are
 * whole GiB when asked and bytes when observed.
 */
import type { Json } from '../../contracts/schema.ts';
import type { DataSource } from './desired.ts';

/** A name this agent owns: a volume's or a snapshot's data object. */
export const OWNED_NAME =
  /^(volume|snapshot)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export interface Capacity {
  totalGb: number;
  freeGb: number;
  /** Backend facts for `configurations` (volume_group, lvm_type …). */
  facts: Record<string, Json>;
}

export interface DataBackend {
  /** Every data object named volume-<uuid> / snapshot-<uuid> this backend holds. */
  list(): Promise<string[]>;
  /** The object's size in bytes, null when it does not exist. */
  sizeOf(name: string): Promise<number | null>;
  create(name: string, sizeGb: number): Promise<void>;
  /** Made from the source's data, then grown to sizeGb. */
  copy(name: string, source: DataSource, sizeGb: number): Promise<void>;
  snapshot(name: string, origin: string, sizeGb: number): Promise<void>;
  extend(name: string, sizeGb: number): Promise<void>;
  zero(name: string): Promise<void>;
  remove(name: string): Promise<void>;
  capacity(): Promise<Capacity>;
}

/** Backend failures no retry can mend (bad size, no room, a shrink, no device-mapper). */
export const PERMANENT_KINDS: ReadonlySet<string> = new Set([
  'invalid',
  'insufficient-space',
  'shrink',
  'activation-required',
  'in-use',
]);
