/**
 * The volume agent's pure desired state and planning (agents/volume/desired.ts, plan.ts):
 * names derived from the id, a target from creation (ACL sorted and deduplicated, empty
 * with no attachment), data made / copied / grown only, never shrunk, a target brought to
 * exactly the desired LUN, account and ACL (a rotated CHAP user: the new account made, the
 * ACL emptied, the old account deleted, the new one bound, the ACL refilled; an account
 * bound before another never unbound, as tgt segfaults; the backing store compared after
 * realpath), a detach taking only the ACL entry and cutting the detached initiator's
 * session (target made again with force), a LUN made again after an extend when no
 * session is connected, a deletion ordered target → accounts → zero → remove, zeroing per
 * volume_clear and backend, the ERROR "in use" for a deletion asked with a connected
 * session and a `keep` for an unclaimed one, LVM without activation (no target) refusing
 * copies and attaches before anything is made, snapshots made once and removed, a
 * backend mismatch refused, and a data object missing while the spec does not say
 * `create` the ERROR "data missing (<path>)" with nothing planned (no data made, no
 * target).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { desiredSnapshot, desiredVolume, type PresentVolume } from '../../agents/volume/desired.ts';
import {
  GIB,
  type ObservedObject,
  type ObservedTarget,
  planSnapshot,
  planVolume,
  type VolumeStep,
} from '../../agents/volume/plan.ts';
import type { VolumeSettings } from '../../agents/volume/settings.ts';
import { PermanentError } from '../../contracts/errors.ts';
import type { SnapshotSpec, VolumeSpec } from '../../contracts/volume.ts';

const ID = '11111111-1111-4111-8111-111111111111';
const SRC = '22222222-2222-4222-8222-222222222222';
const IQN = `iqn.2010-10.org.openstack:volume-${ID}`;
const A = 'iqn.2010-10.org.kumo:host-a';
const B = 'iqn.2010-10.org.kumo:host-b';
const USER = 'abcdefghijklmnopqrst';
const SECRET = '0123456789abcdef';

const FILE: VolumeSettings = {
  host: 'storage1',
  driver: 'file',
  volumesDir: '/var/lib/kumo/volumes',
  vg: 'kumo-volumes',
  lvmType: 'default',
  activation: true,
  volumeClear: 'zero',
  portal: '127.0.0.1:3260',
  tgtControlPort: 0,
};
const LVM: VolumeSettings = { ...FILE, driver: 'lvm' };

const spec = (o: Partial<VolumeSpec> = {}): VolumeSpec => ({
  id: ID,
  size_gb: 1,
  backend: 'file',
  source: null,
  auth: { username: USER, secret: SECRET },
  initiators: [],
  create: true,
  deleting: false,
  revision: 3,
  ...o,
});
const nothing: ObservedObject = {
  sizeBytes: null,
  target: null,
  accountExists: false,
  dataReal: null,
};
const target = (o: Partial<ObservedTarget> = {}): ObservedTarget => ({
  tid: 7,
  iqn: IQN,
  backing: `/var/lib/kumo/volumes/volume-${ID}`,
  backingReal: `/var/lib/kumo/volumes/volume-${ID}`,
  accounts: [USER],
  acl: [A],
  sessions: 0,
  sessionFrom: [],
  lunBytes: 1_074_000_000,
  ...o,
});
/** What a made, exported, unattached 1 GiB volume looks like. */
const exported: ObservedObject = {
  ...nothing,
  sizeBytes: GIB,
  target: target({ acl: [] }),
  accountExists: true,
};
const kinds = (steps: { kind: string }[]) => steps.map((s) => s.kind);

describe('desiredVolume', () => {
  test('names from the id; a target from creation, its ACL empty', () => {
    const d = desiredVolume(spec(), ID, FILE) as PresentVolume;
    assert.equal(d.state, 'present');
    assert.equal(d.name, `volume-${ID}`);
    assert.deepEqual(d.target, {
      iqn: IQN,
      lun: 1,
      backing: `/var/lib/kumo/volumes/volume-${ID}`,
      user: USER,
      secret: SECRET,
      initiators: [],
    });
  });
  test('LVM without activation: no target; an attach is refused naming lvm_activation', () => {
    const meta = { ...LVM, activation: false };
    const d = desiredVolume(spec({ backend: 'lvm' }), ID, meta) as PresentVolume;
    assert.equal(d.target, null);
    assert.throws(
      () => desiredVolume(spec({ backend: 'lvm', initiators: [A] }), ID, meta),
      (e: Error) => e instanceof PermanentError && /lvm_activation = false/.test(e.message),
    );
  });
  test('a target with LUN 1 on the file, the CHAP account and a sorted, unique ACL', () => {
    const d = desiredVolume(spec({ initiators: [B, A, B] }), ID, FILE) as PresentVolume;
    assert.deepEqual(d.target, {
      iqn: IQN,
      lun: 1,
      backing: `/var/lib/kumo/volumes/volume-${ID}`,
      user: USER,
      secret: SECRET,
      initiators: [A, B],
    });
  });
  test('an LV is exported by its device; a source is named by its kind', () => {
    const s = spec({ backend: 'lvm', initiators: [A], source: { kind: 'snapshot', id: SRC } });
    const d = desiredVolume(s, ID, LVM) as PresentVolume;
    assert.equal(d.target?.backing, `/dev/kumo-volumes/volume-${ID}`);
    assert.deepEqual(d.source, { kind: 'snapshot', name: `snapshot-${SRC}` });
  });
  test('null is unclaimed, deleting is claimed; zeroing per backend and volume_clear', () => {
    const un = desiredVolume(null, ID, FILE);
    assert.deepEqual(
      { ...un, state: un.state },
      {
        state: 'deleted',
        id: ID,
        name: `volume-${ID}`,
        iqn: IQN,
        user: null,
        claimed: false,
        clear: true,
        revision: null,
      },
    );
    const del = desiredVolume(spec({ deleting: true }), ID, FILE);
    assert.equal(del.state === 'deleted' && del.claimed && del.user === USER, true);
    const clearOf = (s: VolumeSettings) => {
      const d = desiredVolume(null, ID, s);
      return d.state === 'deleted' && d.clear;
    };
    assert.equal(clearOf({ ...FILE, volumeClear: 'none' }), false);
    assert.equal(clearOf(LVM), true);
    assert.equal(clearOf({ ...LVM, lvmType: 'thin' }), false);
    assert.equal(clearOf({ ...LVM, activation: false }), false);
  });
  test('a spec for the other backend is refused for good', () => {
    assert.throws(() => desiredVolume(spec({ backend: 'lvm' }), ID, FILE), PermanentError);
  });
});

describe('planVolume', () => {
  test('a new volume: the data object, its account, then its whole target (no ACL)', () => {
    const d = desiredVolume(spec({ size_gb: 2 }), ID, FILE) as PresentVolume;
    assert.deepEqual(planVolume(d, nothing, FILE), [
      { kind: 'data-create', name: `volume-${ID}`, sizeGb: 2, why: `make volume-${ID}` },
      { kind: 'account-new', user: USER, secret: SECRET, why: 'CHAP account' },
      { kind: 'target-create', target: d.target, why: `export ${IQN}` },
    ]);
  });
  test('from a source: copied when made, never again', () => {
    const d = desiredVolume(spec({ source: { kind: 'volume', id: SRC } }), ID, FILE);
    assert.deepEqual(kinds(planVolume(d, nothing, FILE)), [
      'data-copy',
      'account-new',
      'target-create',
    ]);
    assert.deepEqual(planVolume(d, exported, FILE), []);
  });
  test('grows, never shrinks; the grown LUN is made again with no session', () => {
    const d = desiredVolume(spec({ size_gb: 2 }), ID, FILE);
    assert.deepEqual(kinds(planVolume(d, exported, FILE)), [
      'data-extend',
      'target-delete',
      'target-create',
    ]);
    const big = { ...exported, sizeBytes: 3 * GIB, target: target({ acl: [], lunBytes: 3221e6 }) };
    assert.deepEqual(planVolume(d, big, FILE), []);
  });
  test('a LUN of the old size: made again without force when no session, else left', () => {
    const d = desiredVolume(spec({ size_gb: 2, initiators: [A] }), ID, FILE) as PresentVolume;
    const grown = { ...exported, sizeBytes: 2 * GIB, target: target() };
    assert.deepEqual(planVolume(d, grown, FILE), [
      {
        kind: 'target-delete',
        tid: 7,
        force: false,
        why: `LUN of 1074000000 bytes, the data is ${2 * GIB}`,
      },
      { kind: 'target-create', target: d.target, why: `export ${IQN}` },
    ]);
    const used = { ...grown, target: target({ sessions: 1, sessionFrom: [A] }) };
    assert.deepEqual(planVolume(d, used, FILE), []);
  });
  test('initiators: account made, then the whole target in one step', () => {
    const d = desiredVolume(spec({ initiators: [A] }), ID, FILE);
    const steps = planVolume(d, { ...nothing, sizeBytes: GIB }, FILE);
    assert.deepEqual(kinds(steps), ['account-new', 'target-create']);
    assert.deepEqual(
      kinds(planVolume(d, { ...nothing, sizeBytes: GIB, accountExists: true }, FILE)),
      ['target-create'],
    );
  });
  test('a right target plans nothing; the ACL follows the initiators exactly', () => {
    const has = { ...nothing, sizeBytes: GIB, target: target(), accountExists: true };
    assert.deepEqual(planVolume(desiredVolume(spec({ initiators: [A] }), ID, FILE), has, FILE), []);
    const steps = planVolume(desiredVolume(spec({ initiators: [B] }), ID, FILE), has, FILE);
    assert.deepEqual(
      steps.map((s) => [s.kind, 'initiator' in s ? s.initiator : '']),
      [
        ['acl-bind', B],
        ['acl-unbind', A],
      ],
    );
  });
  test('a half-made target gets its LUN, account and binding; a foreign account is deleted', () => {
    const o = {
      ...nothing,
      sizeBytes: GIB,
      target: target({
        backing: null,
        lunBytes: null,
        accounts: ['zzzzzzzzzzzzzzzzzzzz'],
        acl: [],
      }),
      accountExists: false,
    };
    const steps = planVolume(desiredVolume(spec({ initiators: [A] }), ID, FILE), o, FILE);
    assert.deepEqual(kinds(steps), [
      'lun-new',
      'account-new',
      'account-delete',
      'account-bind',
      'acl-bind',
    ]);
  });
  const what = (steps: VolumeStep[]) =>
    steps.map((s) => [s.kind, 'user' in s ? s.user : 'initiator' in s ? s.initiator : '']);
  const OLD = 'oldoldoldoldoldoldol';
  test('CHAP rotated: new account, ACL emptied, old deleted, new bound, ACL refilled', () => {
    const o = { ...nothing, sizeBytes: GIB, target: target({ accounts: [OLD] }) };
    const steps = planVolume(desiredVolume(spec({ initiators: [A] }), ID, FILE), o, FILE);
    assert.deepEqual(what(steps), [
      ['account-new', USER],
      ['acl-unbind', A],
      ['account-delete', OLD],
      ['account-bind', USER],
      ['acl-bind', A],
    ]);
    const moved = { ...o, target: target({ accounts: [OLD], backing: '/elsewhere' }) };
    const remade = planVolume(desiredVolume(spec({ initiators: [A] }), ID, FILE), moved, FILE);
    assert.deepEqual(what(remade), [
      ['target-delete', ''],
      ['account-delete', OLD],
      ['account-new', USER],
      ['target-create', ''],
    ]);
  });
  test('two accounts bound: never one bound before another unbound (tgt segfaults)', () => {
    const d = desiredVolume(spec({ initiators: [A] }), ID, FILE);
    const both = (accounts: string[]) => ({
      ...nothing,
      sizeBytes: GIB,
      target: target({ accounts }),
      accountExists: true,
    });
    assert.deepEqual(what(planVolume(d, both([USER, OLD]), FILE)), [['account-delete', OLD]]);
    assert.deepEqual(what(planVolume(d, both([OLD, USER]), FILE)), [
      ['acl-unbind', A],
      ['account-unbind', USER],
      ['account-delete', OLD],
      ['account-bind', USER],
      ['acl-bind', A],
    ]);
  });
  test('a target on another backing store is made again', () => {
    const o = {
      ...nothing,
      sizeBytes: GIB,
      target: target({ backing: '/elsewhere' }),
      accountExists: true,
    };
    const steps = planVolume(desiredVolume(spec({ initiators: [A] }), ID, FILE), o, FILE);
    assert.deepEqual(kinds(steps), ['target-delete', 'target-create']);
  });
  test('a backing store spelled otherwise but the same file after realpath: the target stays', () => {
    const real = `/srv/volumes/volume-${ID}`;
    const t = target({ backing: `/mnt/vols/volume-${ID}`, backingReal: real, acl: [] });
    const d = desiredVolume(spec({ initiators: [A] }), ID, FILE);
    const o = { ...nothing, sizeBytes: GIB, target: t, accountExists: true, dataReal: real };
    assert.deepEqual(kinds(planVolume(d, o, FILE)), ['acl-bind']);
    const other = { ...o, target: { ...t, backingReal: '/srv/volumes/other' } };
    assert.deepEqual(kinds(planVolume(d, other, FILE)), ['target-delete', 'target-create']);
  });
  test('a detach takes the initiator off the ACL; the target and its account stay', () => {
    const o = { ...nothing, sizeBytes: GIB, target: target(), accountExists: true };
    assert.deepEqual(planVolume(desiredVolume(spec(), ID, FILE), o, FILE), [
      { kind: 'acl-unbind', tid: 7, initiator: A, why: `no longer admit ${A}` },
    ]);
  });
  test("a detached initiator's session is cut: the target deleted with force, made again", () => {
    const o = {
      ...nothing,
      sizeBytes: GIB,
      target: target({ acl: [A, B], sessions: 2, sessionFrom: [A, B] }),
      accountExists: true,
    };
    const d = desiredVolume(spec({ initiators: [B] }), ID, FILE) as PresentVolume;
    assert.deepEqual(planVolume(d, o, FILE), [
      { kind: 'target-delete', tid: 7, force: true, why: `cut the session of detached ${A}` },
      { kind: 'target-create', target: d.target, why: `export ${IQN}` },
    ]);
    const cut = { ...o, target: target({ acl: [B], sessions: 1, sessionFrom: [A] }) };
    assert.deepEqual(kinds(planVolume(d, cut, FILE)), ['target-delete', 'target-create']);
    const kept = { ...o, target: target({ acl: [B], sessions: 1, sessionFrom: [B] }) };
    assert.deepEqual(planVolume(d, kept, FILE), []);
  });
  test('deleting: target, accounts, zero, remove — in that order', () => {
    const o = { ...nothing, sizeBytes: GIB, target: target(), accountExists: true };
    const steps = planVolume(desiredVolume(spec({ deleting: true }), ID, FILE), o, FILE);
    assert.deepEqual(kinds(steps), ['target-delete', 'account-delete', 'data-zero', 'data-remove']);
    const none = planVolume(
      desiredVolume(spec({ deleting: true }), ID, { ...FILE, volumeClear: 'none' }),
      { ...nothing, sizeBytes: GIB },
      FILE,
    );
    assert.deepEqual(kinds(none), ['data-remove']);
    assert.deepEqual(
      planVolume(desiredVolume(spec({ deleting: true }), ID, FILE), nothing, FILE),
      [],
    );
  });
  test('deleting with a session connected is the ERROR "in use"; unclaimed, it is kept', () => {
    const o = { ...nothing, sizeBytes: GIB, target: target({ sessions: 2 }), accountExists: true };
    assert.throws(
      () => planVolume(desiredVolume(spec({ deleting: true }), ID, FILE), o, FILE),
      (e: Error) => e instanceof PermanentError && /in use: 2 iSCSI session/.test(e.message),
    );
    assert.deepEqual(kinds(planVolume(desiredVolume(null, ID, FILE), o, FILE)), ['keep']);
    const free = { ...o, target: target() };
    assert.deepEqual(kinds(planVolume(desiredVolume(null, ID, FILE), free, FILE)), [
      'target-delete',
      'account-delete',
      'data-zero',
      'data-remove',
    ]);
  });
  test('LVM without activation refuses copies, makes no target, thin copies are snapshots', () => {
    const meta = { ...LVM, activation: false };
    const copy = desiredVolume(
      spec({ backend: 'lvm', source: { kind: 'volume', id: SRC } }),
      ID,
      meta,
    );
    assert.throws(
      () => planVolume(copy, nothing, meta),
      /cannot copy data with lvm_activation = false/,
    );
    const thin = { ...meta, lvmType: 'thin' as const };
    assert.deepEqual(kinds(planVolume(copy, nothing, thin)), ['data-copy']);
    assert.deepEqual(
      kinds(planVolume(desiredVolume(spec({ backend: 'lvm' }), ID, meta), nothing, meta)),
      ['data-create'],
    );
  });
});

describe('data missing while not creating', () => {
  const gone = (e: Error, path: string) =>
    e instanceof PermanentError && e.message === `data missing (${path})`;
  test('a volume: the ERROR naming the file, nothing made, no target on a blank file', () => {
    const path = `/var/lib/kumo/volumes/volume-${ID}`;
    for (const o of [nothing, { ...nothing, target: target(), accountExists: true }])
      assert.throws(
        () =>
          planVolume(desiredVolume(spec({ create: false, initiators: [A] }), ID, FILE), o, FILE),
        (e: Error) => gone(e, path),
      );
    assert.throws(
      () => planVolume(desiredVolume(spec({ create: false }), ID, FILE), nothing, FILE),
      (e: Error) => gone(e, path),
    );
  });
  test('an LV is named <vg>/<lv>; present data plans as before; deleting needs no create', () => {
    assert.throws(
      () =>
        planVolume(desiredVolume(spec({ backend: 'lvm', create: false }), ID, LVM), nothing, LVM),
      (e: Error) => gone(e, `kumo-volumes/volume-${ID}`),
    );
    const d = desiredVolume(spec({ create: false, size_gb: 2 }), ID, FILE);
    assert.deepEqual(kinds(planVolume(d, exported, FILE)), [
      'data-extend',
      'target-delete',
      'target-create',
    ]);
    const del = desiredVolume(spec({ create: false, deleting: true }), ID, FILE);
    assert.deepEqual(planVolume(del, nothing, FILE), []);
  });
  test('a snapshot: the ERROR naming it (an LV: _snapshot-<id>), nothing made', () => {
    const snap: SnapshotSpec = {
      id: SRC,
      volume_id: ID,
      size_gb: 1,
      backend: 'file',
      create: false,
      deleting: false,
      revision: 2,
    };
    assert.throws(
      () => planSnapshot(desiredSnapshot(snap, SRC, FILE), nothing),
      (e: Error) => gone(e, `/var/lib/kumo/volumes/snapshot-${SRC}`),
    );
    assert.throws(
      () => planSnapshot(desiredSnapshot({ ...snap, backend: 'lvm' }, SRC, LVM), nothing),
      (e: Error) => gone(e, `kumo-volumes/_snapshot-${SRC}`),
    );
    assert.deepEqual(
      planSnapshot(desiredSnapshot(snap, SRC, FILE), { ...nothing, sizeBytes: GIB }),
      [],
    );
  });
});

describe('planSnapshot', () => {
  const snap: SnapshotSpec = {
    id: SRC,
    volume_id: ID,
    size_gb: 1,
    backend: 'file',
    create: true,
    deleting: false,
    revision: 1,
  };
  test('made once from its volume', () => {
    assert.deepEqual(planSnapshot(desiredSnapshot(snap, SRC, FILE), nothing), [
      {
        kind: 'data-snapshot',
        name: `snapshot-${SRC}`,
        origin: `volume-${ID}`,
        sizeGb: 1,
        why: `snapshot volume-${ID}`,
      },
    ]);
    assert.deepEqual(
      planSnapshot(desiredSnapshot(snap, SRC, FILE), { ...nothing, sizeBytes: GIB }),
      [],
    );
  });
  test('deleting or unclaimed: zeroed and removed', () => {
    const has = { ...nothing, sizeBytes: GIB };
    assert.deepEqual(
      kinds(planSnapshot(desiredSnapshot({ ...snap, deleting: true }, SRC, FILE), has)),
      ['data-zero', 'data-remove'],
    );
    assert.deepEqual(kinds(planSnapshot(desiredSnapshot(null, SRC, FILE), has)), [
      'data-zero',
      'data-remove',
    ]);
  });
});
