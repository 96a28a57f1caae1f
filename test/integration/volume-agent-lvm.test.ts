/**
 * kumo-volume-agent's hooks with the LVM backend at the metadata level: real lvcreate /
 * lvextend / lvremove / lvs on loop-file volume groups with activation disabled (this
 * kernel has no device-mapper: HOST-LAB), a real tgtd, and the fake kumo-api of the
 * harness. LVM refuses thin pools, thin LVs and snapshots without device-mapper; the
 * layouts the agent must read and remove are written into the group's metadata
 * (helpers/lvm-lab.ts restoreLayout).
 *
 * Proves: a thick volume is an LV `volume-<id>` of its size with no target (no device to
 * export without activation), grown by extend, reported with the group's capacity; what LVM cannot do here is the ERROR with LVM's own words
 * (a snapshot, a thin pool) or the agent's (copying data or exporting without
 * activation), and leaves nothing; more than the group holds is the ERROR "insufficient
 * free space" with no LV; an LV missing while the spec does not say `create` is the
 * ERROR "data missing (<vg>/volume-<id>)" and none is made; a thick snapshot held in the
 * metadata is served, its origin is not deleted while it exists (ERROR naming it), the
 * snapshot and then the volume are;
 * thin: a thin volume and its snapshot are served, an unclaimed thin LV is removed by a
 * resync and the thin pool never, the capacity is the pool's.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { volumeHooks } from '../../agents/volume/agent.ts';
import type { VolumeSpec } from '../../contracts/volume.ts';
import type { AgentHooks } from '../../core/agent.ts';
import { compileConfig } from '../../core/config.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { findLv, lvs } from '../../host/lvm/lvs.ts';
import { tempDir } from '../helpers/env.ts';
import {
  type LoopVolumeGroup,
  loopVolumeGroup,
  lvmTool,
  restoreLayout,
} from '../helpers/lvm-lab.ts';
import { fakeVolumeApi, type TestTgtd, testTgtd } from './volume-agent-harness.ts';

const GIB = 1024 ** 3;
const USER = 'kumoTestUser01234567';
const SECRET = 'kumoTestSecret01';
const A = 'iqn.2010-10.org.kumo:host-a';

function lvmAgent(lvmType: 'default' | 'thin') {
  const tmp = tempDir('kumo-volume-lvm-');
  const api = fakeVolumeApi();
  const s = {
    lab: undefined as unknown as LoopVolumeGroup,
    tgtd: undefined as unknown as TestTgtd,
  };
  let hooks: AgentHooks;
  const volume = (o: Partial<VolumeSpec> = {}): VolumeSpec => {
    const spec: VolumeSpec = {
      id: randomUUID(),
      size_gb: 1,
      backend: 'lvm',
      source: null,
      auth: { username: USER, secret: SECRET },
      initiators: [],
      create: true,
      deleting: false,
      revision: 1,
      ...o,
    };
    api.volumes.set(spec.id, spec);
    return spec;
  };
  const start = async (lab: LoopVolumeGroup) => {
    s.lab = lab;
    s.tgtd = await testTgtd(tmp.path);
    const config = compileConfig(
      [
        '[DEFAULT]',
        'host = volume-lvm-host',
        `state_path = ${tmp.path}`,
        '[volume]',
        'volume_driver = lvm',
        `volume_group = ${lab.ctx.vg}`,
        `lvm_type = ${lvmType}`,
        'lvm_activation = false',
        'volume_clear = zero',
        `target_port = ${s.tgtd.portal}`,
        `tgt_control_port = ${s.tgtd.control}`,
      ].join('\n'),
    );
    const runner = createCommandRunner();
    hooks = await volumeHooks({ config, runner, log: silentLogger(), broker: api.broker });
    await api.attach(hooks);
  };
  const stop = async () => {
    await s.tgtd?.stop();
    s.lab?.cleanup();
    tmp.cleanup();
  };
  const lv = (name: string) => findLv(s.lab.ctx, name);
  const lvNames = async () => (await lvs(s.lab.ctx)).map((l) => l.name).sort();
  return { api, s, volume, start, stop, lv, lvNames, hooks: () => hooks };
}

describe('kumo-volume-agent, thick LVM at the metadata level', { timeout: 120_000 }, () => {
  const t = lvmAgent('default');
  const { api } = t;
  before(() => t.start(loopVolumeGroup(4096)));
  after(() => t.stop());
  let V = '';

  test('a thick volume is an LV of its size; extend grows it; the group is reported', async () => {
    V = t.volume().id;
    await api.reconcile('volume', V);
    assert.deepEqual(api.last('volume', V), {
      resource: 'volume',
      id: V,
      status: 'ACTIVE',
      revision: 1,
    });
    assert.equal((await t.lv(`volume-${V}`))?.sizeBytes, GIB);
    assert.equal(await t.s.tgtd.hasTarget(V), false, 'no device: no target');
    Object.assign(api.volumes.get(V) as VolumeSpec, { size_gb: 2, revision: 2 });
    await api.reconcile('volume', V);
    assert.equal((await t.lv(`volume-${V}`))?.sizeBytes, 2 * GIB);
    const conf = await t.hooks().configurations();
    assert.equal(conf.volume_backend_name, 'lvm');
    assert.equal(conf.volume_group, t.s.lab.ctx.vg);
    assert.equal(conf.lvm_type, 'default');
    assert.equal(conf.volumes, 1);
    assert.ok(
      Math.abs((conf.total_capacity_gb as number) - 4) < 0.1,
      String(conf.total_capacity_gb),
    );
    assert.ok(Math.abs((conf.free_capacity_gb as number) - 2) < 0.1, String(conf.free_capacity_gb));
  });

  test('what needs device-mapper is the ERROR with the reason, and leaves nothing', async () => {
    const before = await t.lvNames();
    const S = randomUUID();
    api.snapshots.set(S, {
      id: S,
      volume_id: V,
      size_gb: 2,
      backend: 'lvm',
      create: true,
      deleting: false,
      revision: 1,
    });
    await api.reconcile('snapshot', S);
    assert.equal(api.last('snapshot', S)?.status, 'ERROR');
    assert.match(api.last('snapshot', S)?.reason ?? '', /without using device-mapper/);
    api.snapshots.delete(S);
    const copy = t.volume({ source: { kind: 'volume', id: V } }).id;
    await api.reconcile('volume', copy);
    assert.equal(api.last('volume', copy)?.reason, 'cannot copy data with lvm_activation = false');
    Object.assign(api.volumes.get(V) as VolumeSpec, { initiators: [A], revision: 3 });
    await api.reconcile('volume', V);
    assert.match(
      api.last('volume', V)?.reason ?? '',
      /cannot export a volume with lvm_activation = false/,
    );
    assert.equal(await t.s.tgtd.hasTarget(V), false);
    assert.deepEqual(await t.lvNames(), before);
    api.volumes.delete(copy);
  });

  test('more than the group holds: the ERROR with LVM’s words, no LV', async () => {
    const big = t.volume({ size_gb: 100 }).id;
    await api.reconcile('volume', big);
    assert.equal(api.last('volume', big)?.status, 'ERROR');
    assert.match(api.last('volume', big)?.reason ?? '', /insufficient free space/i);
    assert.equal(await t.lv(`volume-${big}`), null);
    api.volumes.delete(big);
  });

  test('an LV missing while not creating: the ERROR "data missing (<vg>/<lv>)", no LV made', async () => {
    const lost = t.volume({ create: false }).id;
    await api.reconcile('volume', lost);
    assert.deepEqual(api.last('volume', lost), {
      resource: 'volume',
      id: lost,
      status: 'ERROR',
      reason: `data missing (${t.s.lab.ctx.vg}/volume-${lost})`,
      revision: 1,
    });
    assert.equal(await t.lv(`volume-${lost}`), null);
    api.volumes.delete(lost);
  });

  test('a snapshot held in the metadata: served; its origin is not deleted before it', async () => {
    const S = randomUUID();
    lvmTool('lvcreate', ['-an', '-Zn', '-n', `_snapshot-${S}`, '-L', '64m', t.s.lab.ctx.vg]);
    restoreLayout(t.s.lab.ctx.vg, {
      snapshots: [{ cow: `_snapshot-${S}`, origin: `volume-${V}`, extents: 16 }],
    });
    const snap = {
      id: S,
      volume_id: V,
      size_gb: 2,
      backend: 'lvm' as const,
      create: true,
      deleting: false,
      revision: 1,
    };
    api.snapshots.set(S, snap);
    await api.reconcile('snapshot', S);
    assert.deepEqual(api.last('snapshot', S), {
      resource: 'snapshot',
      id: S,
      status: 'ACTIVE',
      revision: 1,
    });
    const spec = api.volumes.get(V) as VolumeSpec;
    Object.assign(spec, { initiators: [], deleting: true, revision: 4 });
    await api.reconcile('volume', V);
    assert.match(api.last('volume', V)?.reason ?? '', /has snapshots/);
    assert.ok(await t.lv(`volume-${V}`));
    Object.assign(snap, { deleting: true, revision: 2 });
    await api.reconcile('snapshot', S);
    assert.deepEqual(api.last('snapshot', S), {
      resource: 'snapshot',
      id: S,
      status: 'ACTIVE',
      revision: 2,
    });
    assert.equal(await t.lv(`_snapshot-${S}`), null);
    Object.assign(spec, { revision: 5 });
    await api.reconcile('volume', V);
    assert.deepEqual(api.last('volume', V), {
      resource: 'volume',
      id: V,
      status: 'ACTIVE',
      revision: 5,
    });
    assert.deepEqual(await t.lvNames(), []);
  });
});

describe('kumo-volume-agent, thin LVM at the metadata level', { timeout: 120_000 }, () => {
  const t = lvmAgent('thin');
  const { api } = t;
  const THIN = randomUUID();
  const SNAP = randomUUID();
  const STRAY = randomUUID();
  before(async () => {
    const lab = loopVolumeGroup(1024);
    for (const [name, size] of [
      ['data', '64m'],
      ['meta', '4m'],
    ] as const)
      lvmTool('lvcreate', ['-an', '-Zn', '-n', name, '-L', size, lab.ctx.vg]);
    restoreLayout(lab.ctx.vg, {
      pool: { data: 'data', meta: 'meta', extents: 16 },
      thin: [
        { name: `volume-${THIN}`, extents: 256 },
        { name: `_snapshot-${SNAP}`, extents: 256, origin: `volume-${THIN}` },
        { name: `volume-${STRAY}`, extents: 256 },
      ],
    });
    await t.start(lab);
  });
  after(() => t.stop());

  test('a new thin volume: the ERROR with LVM’s reason, nothing made', async () => {
    const before = await t.lvNames();
    const id = t.volume().id;
    await api.reconcile('volume', id);
    assert.equal(api.last('volume', id)?.status, 'ERROR');
    assert.match(api.last('volume', id)?.reason ?? '', /device-mapper/);
    assert.deepEqual(await t.lvNames(), before);
    api.volumes.delete(id);
  });

  test('a resync serves the claimed thin volume and snapshot, removes the stray, keeps the pool', async () => {
    t.volume({ id: THIN });
    api.snapshots.set(SNAP, {
      id: SNAP,
      volume_id: THIN,
      size_gb: 1,
      backend: 'lvm',
      create: true,
      deleting: false,
      revision: 1,
    });
    await api.resync();
    assert.deepEqual(api.last('volume', THIN), {
      resource: 'volume',
      id: THIN,
      status: 'ACTIVE',
      revision: 1,
    });
    assert.deepEqual(api.last('snapshot', SNAP), {
      resource: 'snapshot',
      id: SNAP,
      status: 'ACTIVE',
      revision: 1,
    });
    assert.equal(await t.lv(`volume-${STRAY}`), null);
    assert.ok(await t.lv(`volume-${THIN}`));
    assert.ok(await t.lv(`_snapshot-${SNAP}`));
    assert.ok(await t.lv(`${t.s.lab.ctx.vg}-pool`));
    const conf = await t.hooks().configurations();
    assert.equal(conf.lvm_type, 'thin');
    assert.equal(conf.total_capacity_gb, 0.06);
  });

  test('the snapshot, then the thin volume, are deleted', async () => {
    Object.assign(api.snapshots.get(SNAP) ?? {}, { deleting: true, revision: 2 });
    await api.reconcile('snapshot', SNAP);
    assert.equal(await t.lv(`_snapshot-${SNAP}`), null);
    Object.assign(api.volumes.get(THIN) ?? {}, { deleting: true, revision: 2 });
    await api.reconcile('volume', THIN);
    assert.deepEqual(api.last('volume', THIN), {
      resource: 'volume',
      id: THIN,
      status: 'ACTIVE',
      revision: 2,
    });
    assert.deepEqual(await t.lvNames(), [`${t.s.lab.ctx.vg}-pool`]);
  });
});
