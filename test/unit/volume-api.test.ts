/**
 * Cinder's request bodies as kumo-api parses them (contracts/volume-api.ts) and its list
 * paging (api/routes/cinder-list.ts pageOf): what cinderclient sends is accepted (nulls for
 * every unset key), bad values are refused naming the field, unsupported features are
 * refused by name, and pages neither repeat nor skip.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ListQuery, pageOf } from '../../api/routes/cinder-list.ts';
import { ApiError } from '../../contracts/errors.ts';
import { ValidationError } from '../../contracts/schema.ts';
import {
  parseSnapshotCreate,
  parseTextUpdate,
  parseVolumeAction,
  parseVolumeCreate,
} from '../../contracts/volume-api.ts';

const field = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ValidationError) return e.field;
    throw e;
  }
  return 'accepted';
};

test("cinderclient's create body: every key, nulls for the unset", () => {
  const v = parseVolumeCreate({
    volume: {
      size: 1,
      consistencygroup_id: null,
      snapshot_id: null,
      name: 'v',
      description: null,
      volume_type: null,
      availability_zone: null,
      metadata: {},
      imageRef: null,
      source_volid: null,
      backup_id: null,
    },
  });
  assert.deepEqual(v, { name: 'v', description: null, metadata: {}, size: 1 });
  assert.equal(parseVolumeCreate({ volume: { size: '2' } }).size, 2);
});

test('create refusals name the field', () => {
  const bad = (volume: unknown) => field(() => parseVolumeCreate({ volume }));
  assert.equal(bad({ size: 1, name: 'a\nb' }), 'volume.name');
  assert.equal(bad({ size: 1, display_name: 'a\tb' }), 'volume.display_name');
  assert.equal(bad({ size: -3 }), 'volume.size');
  assert.equal(bad({ size: 1.5 }), 'volume.size');
  assert.equal(bad({ size: 1e9 }), 'volume.size');
  assert.equal(bad({}), 'volume.size');
  assert.equal(bad({ size: 1, imageRef: 'x' }), 'volume.imageRef');
  assert.equal(bad({ size: 1, backup_id: 'x' }), 'volume.backup_id');
  assert.equal(bad({ size: 1, multiattach: true }), 'volume.multiattach');
  assert.equal(bad({ size: 1, metadata: { '': 'x' } }), 'volume.metadata key');
  assert.equal(bad({ size: 1, source_volid: 'X' }), 'volume.source_volid');
  assert.equal(bad({ size: 1, other: 1 }), 'volume.other');
  assert.equal(
    field(() => parseVolumeCreate({ size: 1 })),
    'volume',
  );
  assert.equal(bad({ snapshot_id: '00000000-0000-4000-8000-000000000001' }), 'accepted');
});

test('updates, snapshots and actions', () => {
  assert.deepEqual(parseTextUpdate({ volume: { name: null } }, 'volume'), { name: null });
  assert.equal(
    field(() => parseTextUpdate({ volume: {} }, 'volume')),
    'volume',
  );
  assert.equal(
    field(() => parseTextUpdate({ snapshot: { size: 2 } }, 'snapshot')),
    'snapshot.size',
  );
  const snap = parseSnapshotCreate({
    snapshot: {
      volume_id: '00000000-0000-4000-8000-000000000001',
      force: 'True',
      name: null,
      description: null,
      metadata: null,
    },
  });
  assert.equal(snap.force, true);
  assert.equal(
    field(() => parseSnapshotCreate({ snapshot: { volume_id: 'v' } })),
    'snapshot.volume_id',
  );
  assert.deepEqual(parseVolumeAction({ 'os-extend': { new_size: 3 } }), {
    action: 'os-extend',
    newSize: 3,
  });
  assert.equal(
    field(() => parseVolumeAction({ 'os-extend': { new_size: 0 } })),
    'os-extend.new_size',
  );
  assert.equal(
    field(() => parseVolumeAction({ 'os-migrate_volume': {} })),
    'os-migrate_volume',
  );
  assert.equal(
    field(() => parseVolumeAction({ 'os-extend': {}, 'os-force_delete': {} })),
    '',
  );
});

test('pages: sorted totally, a marker continues after itself, an unknown marker is a 404', () => {
  const rows = ['c', 'a', 'b', 'd'].map((id, i) => ({ id, metadata: {}, size: i % 2 }));
  const q = (over: Partial<ListQuery>): ListQuery => ({
    filters: {},
    metadata: undefined,
    project: undefined,
    limit: undefined,
    marker: undefined,
    offset: 0,
    sort: [
      ['size', 'asc'],
      ['id', 'asc'],
    ],
    ...over,
  });
  const notFound = (id: string) => new ApiError('NotFound', id);
  const first = pageOf(rows, q({ limit: 2 }), notFound);
  assert.deepEqual(
    first.items.map((r) => r.id),
    ['b', 'c'],
  );
  const second = pageOf(rows, q({ limit: 2, marker: first.next as string }), notFound);
  assert.deepEqual(
    second.items.map((r) => r.id),
    ['a', 'd'],
  );
  assert.equal(second.next, undefined);
  assert.throws(() => pageOf(rows, q({ marker: 'zz' }), notFound), /zz/);
});
