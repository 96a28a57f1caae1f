/**
 * diff(desired, observed) → the steps that make one volume's or snapshot's data object and
 * iSCSI target match. Pure: steps are data, run by the one executor (executor.ts).
 *
 * Order: the data object first (made, copied from its source, or grown), then its CHAP
 * account and target (LUN 1 on the data object, the account bound, one ACL entry per
 * initiator); a deletion removes the target, then its accounts, then zeroes and removes
 * the data.
 *
 * Invariants:
 * - an object that is already right plans nothing; data only grows (a larger object than
 *   asked is left, never truncated); a source is copied only when the object is made;
 * - data is made only while the API says `create`: a missing object otherwise is the
 *   ERROR "data missing (<path>)" and nothing at all is planned for it (no target is put
 *   on a blank object for an attached guest to read);
 * - the target's one CHAP account is the spec's user: the API rotates the credentials on
 *   every attach and tgt cannot show a password, so a user other than the bound one is
 *   the signal — the new account is made, the ACL emptied (the target admits nobody), the
 *   old account deleted, the new one bound, the ACL refilled: the old credentials stop
 *   working, the new ones work, and no moment admits an initiator without CHAP. tgt
 *   1.0.85 segfaults when an account bound before another is unbound (or deleted), so
 *   the new account is never bound next to the old one (targetFix);
 * - a target is made again only when its LUN is another object: its backing store is
 *   compared after realpath, so a symlinked volumes_dir (or an LV's /dev/<vg>/<lv> link)
 *   never force-deletes a live target of the right data;
 * - a volume's target lives from its creation to its deletion; a detach only takes the
 *   initiator off the ACL, and a session that initiator still has is cut (the target
 *   deleted with force and made again: tgt's unbind keeps existing sessions), so the
 *   detached host cannot keep reading; a volume's data is never removed while its target
 *   has a session: asked for (deleting) that is the ERROR "in use", unclaimed it is kept
 *   and logged (a `keep` step);
 * - tgt reads a LUN's size when the LUN is made: after an extend, a target with no session
 *   is made again, so the next attach sees the new size (one with a session is left);
 * - what LVM cannot do without device-mapper (copy data, export) is a PermanentError
 *   naming `lvm_activation = false`, planned before anything is made.
 */
import { PermanentError } from '../../contracts/errors.ts';
import { sameTgtSize } from '../../host/tgt/show.ts';
import type {
  DataSource,
  DeletedObject,
  DesiredSnapshot,
  DesiredTarget,
  DesiredVolume,
  PresentVolume,
} from './desired.ts';
import type { VolumeSettings } from './settings.ts';

export const GIB = 1024 ** 3;

export interface ObservedTarget {
  tid: number;
  iqn: string;
  /** LUN `lun`'s backing store (null: no such LUN). */
  backing: string | null;
  /** `backing` with symlinks resolved (as shown when it cannot be resolved). */
  backingReal: string | null;
  accounts: string[];
  acl: string[];
  /** Connected I_T nexuses. */
  sessions: number;
  /** The initiator of each connected session. */
  sessionFrom: string[];
  /** LUN `lun`'s size as tgt shows it (whole decimal MB; null: no such LUN). */
  lunBytes: number | null;
}

export interface ObservedObject {
  /** The data object's size in bytes (null: it does not exist). */
  sizeBytes: number | null;
  /** The volume's target, found by its iqn (null: none, or a snapshot). */
  target: ObservedTarget | null;
  /** Whether tgtd has the volume's CHAP account (the desired user's). */
  accountExists: boolean;
  /** The desired target's backing store with symlinks resolved (null: no target wanted). */
  dataReal: string | null;
}

type Why = { why: string };
export type VolumeStep =
  | ({ kind: 'data-create'; name: string; sizeGb: number } & Why)
  | ({ kind: 'data-copy'; name: string; source: DataSource; sizeGb: number } & Why)
  | ({ kind: 'data-snapshot'; name: string; origin: string; sizeGb: number } & Why)
  | ({ kind: 'data-extend'; name: string; sizeGb: number } & Why)
  | ({ kind: 'data-zero'; name: string } & Why)
  | ({ kind: 'data-remove'; name: string } & Why)
  | ({ kind: 'account-new'; user: string; secret: string } & Why)
  | ({ kind: 'account-delete'; user: string } & Why)
  | ({ kind: 'account-bind' | 'account-unbind'; tid: number; user: string } & Why)
  | ({ kind: 'acl-bind' | 'acl-unbind'; tid: number; initiator: string } & Why)
  | ({ kind: 'lun-new'; tid: number; lun: number; backing: string } & Why)
  | ({ kind: 'target-create'; target: DesiredTarget } & Why)
  | ({ kind: 'target-delete'; tid: number; force: boolean } & Why)
  | ({ kind: 'keep' } & Why);

function checkCopy(s: VolumeSettings): void {
  if (s.driver === 'lvm' && s.lvmType === 'default' && !s.activation)
    throw new PermanentError('cannot copy data with lvm_activation = false');
}

function checkExport(s: VolumeSettings): void {
  if (s.driver === 'lvm' && !s.activation)
    throw new PermanentError('cannot export a volume with lvm_activation = false (no device)');
}

/** A data object that is gone while the API does not say `create`: nothing is made. */
function missing(d: { create: boolean; path: string }): void {
  if (!d.create) throw new PermanentError(`data missing (${d.path})`);
}

function dataSteps(d: PresentVolume, o: ObservedObject, s: VolumeSettings): VolumeStep[] {
  const { name, sizeGb } = d;
  if (o.sizeBytes === null) {
    missing(d);
    if (!d.source) return [{ kind: 'data-create', name, sizeGb, why: `make ${name}` }];
    checkCopy(s);
    return [
      { kind: 'data-copy', name, source: d.source, sizeGb, why: `${name} from ${d.source.name}` },
    ];
  }
  if (o.sizeBytes < sizeGb * GIB)
    return [{ kind: 'data-extend', name, sizeGb, why: `grow ${name} to ${sizeGb} GiB` }];
  return [];
}

/** Every account to delete with a target: those bound to it and the volume's own. */
function accountDeletes(o: ObservedObject, user: string | null): VolumeStep[] {
  const users = new Set(o.target?.accounts ?? []);
  if (user && o.accountExists) users.add(user);
  return [...users].map((u) => ({ kind: 'account-delete', user: u, why: 'CHAP account' }));
}

function targetRemoval(o: ObservedObject, user: string | null, force: boolean): VolumeStep[] {
  const t = o.target;
  const target: VolumeStep[] = t
    ? [{ kind: 'target-delete', tid: t.tid, force, why: `remove target ${t.iqn}` }]
    : [];
  return [...target, ...accountDeletes(o, user)];
}

/**
 * The target's accounts brought to exactly the volume's one, never unbinding an account
 * bound before another (tgt 1.0.85 then segfaults): those after the first are taken off
 * from the last back, the first one too when it is not the volume's; an old account is
 * deleted (tgtadm's delete unbinds it), the volume's own only unbound, then bound again.
 */
function accountSteps(d: DesiredTarget, t: ObservedTarget): VolumeStep[] {
  const tid = t.tid;
  const keep = t.accounts[0] === d.user ? 1 : 0;
  const off = t.accounts
    .slice(keep)
    .reverse()
    .map(
      (user): VolumeStep =>
        user === d.user
          ? { kind: 'account-unbind', tid, user, why: 'bound after another account' }
          : { kind: 'account-delete', user, why: 'a CHAP account not the volume’s (rotated)' },
    );
  if (keep) return off;
  return [...off, { kind: 'account-bind', tid, user: d.user, why: 'bind CHAP account' }];
}

const acl = (kind: 'acl-bind' | 'acl-unbind', tid: number, initiator: string, why: string) =>
  ({ kind, tid, initiator, why }) as const;

/**
 * An existing target brought to the desired LUN, account and ACL. When its bound account
 * is another (CHAP rotated), its ACL is emptied first and refilled last: between the old
 * account's removal and the new one's binding the target has no account, and tgt would
 * then admit a listed initiator without CHAP — with no ACL entry it admits nobody.
 */
function targetFix(d: DesiredTarget, t: ObservedTarget, accountExists: boolean): VolumeStep[] {
  const tid = t.tid;
  const steps: VolumeStep[] = [];
  if (t.backing === null)
    steps.push({ kind: 'lun-new', tid, lun: d.lun, backing: d.backing, why: 'LUN' });
  if (!accountExists)
    steps.push({ kind: 'account-new', user: d.user, secret: d.secret, why: 'CHAP account' });
  const rotated = t.accounts.length > 0 && t.accounts[0] !== d.user;
  const admits = rotated ? [] : t.acl;
  if (rotated)
    for (const i of t.acl) steps.push(acl('acl-unbind', tid, i, 'admit nobody while CHAP changes'));
  steps.push(...accountSteps(d, t));
  for (const i of d.initiators.filter((i) => !admits.includes(i)))
    steps.push(acl('acl-bind', tid, i, `admit ${i}`));
  for (const i of admits.filter((i) => !d.initiators.includes(i)))
    steps.push(acl('acl-unbind', tid, i, `no longer admit ${i}`));
  return steps;
}

/** The target has no LUN yet, or its LUN is the desired object (by path, or after realpath). */
function servesData(want: DesiredTarget, t: ObservedTarget, dataReal: string | null): boolean {
  if (t.backing === null || t.backing === want.backing) return true;
  return dataReal !== null && t.backingReal === dataReal;
}

/** The data object's size once this plan's data steps ran (data only grows). */
function dataBytes(d: PresentVolume, o: ObservedObject): number {
  return Math.max(o.sizeBytes ?? 0, d.sizeGb * GIB);
}

/**
 * Why a target on the right data is deleted and made again: a session of an initiator no
 * longer admitted (cut, with force), or a LUN of the old size and no session (tgt reads
 * the size only when the LUN is made; without force: a login since is not cut).
 */
function remakeWhy(
  want: DesiredTarget,
  t: ObservedTarget,
  bytes: number,
): { force: boolean; why: string } | null {
  const gone = t.sessionFrom.filter((i) => !want.initiators.includes(i));
  if (gone.length) return { force: true, why: `cut the session of detached ${gone.join(', ')}` };
  if (
    t.sessions === 0 &&
    t.lunBytes !== null &&
    !sameTgtSize({ lun: want.lun, sizeBytes: t.lunBytes, backingStore: null }, bytes)
  )
    return { force: false, why: `LUN of ${t.lunBytes} bytes, the data is ${bytes}` };
  return null;
}

function targetSteps(d: PresentVolume, o: ObservedObject, s: VolumeSettings): VolumeStep[] {
  const want = d.target;
  if (!want) return targetRemoval(o, null, true);
  checkExport(s);
  const t = o.target;
  const remake = t && remakeWhy(want, t, dataBytes(d, o));
  if (t && !remake && servesData(want, t, o.dataReal)) return targetFix(want, t, o.accountExists);
  const del = remake || { force: true, why: 'target on another backing store' };
  const stale: VolumeStep[] = t
    ? [
        { kind: 'target-delete', tid: t.tid, ...del },
        ...t.accounts
          .filter((u) => u !== want.user)
          .map(
            (user): VolumeStep => ({ kind: 'account-delete', user, why: 'the old CHAP account' }),
          ),
      ]
    : [];
  const account: VolumeStep[] = o.accountExists
    ? []
    : [{ kind: 'account-new', user: want.user, secret: want.secret, why: 'CHAP account' }];
  return [...stale, ...account, { kind: 'target-create', target: want, why: `export ${want.iqn}` }];
}

function removal(d: DeletedObject, o: ObservedObject): VolumeStep[] {
  const sessions = o.target?.sessions ?? 0;
  if (sessions > 0) {
    const why = `${d.name} is in use: ${sessions} iSCSI session(s) connected to its target`;
    if (d.claimed) throw new PermanentError(why);
    return [{ kind: 'keep', why: `${why}; claimed by nothing, kept` }];
  }
  const data: VolumeStep[] =
    o.sizeBytes === null
      ? []
      : [
          ...(d.clear
            ? [{ kind: 'data-zero' as const, name: d.name, why: 'volume_clear = zero' }]
            : []),
          { kind: 'data-remove', name: d.name, why: `remove ${d.name}` },
        ];
  return [...targetRemoval(o, d.user, false), ...data];
}

export function planVolume(d: DesiredVolume, o: ObservedObject, s: VolumeSettings): VolumeStep[] {
  if (d.state === 'deleted') return removal(d, o);
  return [...dataSteps(d, o, s), ...targetSteps(d, o, s)];
}

export function planSnapshot(d: DesiredSnapshot, o: ObservedObject): VolumeStep[] {
  if (d.state === 'deleted') return removal(d, o);
  if (o.sizeBytes !== null) return [];
  missing(d);
  const { name, origin, sizeGb } = d;
  return [{ kind: 'data-snapshot', name, origin, sizeGb, why: `snapshot ${origin}` }];
}
