/**
 * kumo-volume-agent's hooks (agents/volume/agent.ts) on a real host without the API, file
 * backend: a real tgtd of the test's own (its control port, a portal on 127.0.0.1 at a
 * free port), real sparse files in a temp directory, and the userspace initiators
 * (iscsi-inq, qemu-io over libiscsi). A fake broker passed in plays kumo-api: it answers
 * get_host_volumes / get_volume_info / get_snapshot_info from specs the test edits and
 * records the report_status casts.
 *
 * Proves: a volume is a sparse file of its size with its target from creation (LUN 1 on
 * the file, the CHAP account bound, an empty ACL: tgtd admits nobody, A with the right
 * credentials is refused); initiators [A] add A to the ACL: A with the volume's
 * credentials reads it, A with a wrong secret and B are refused; data written through
 * the target lands in the file; a snapshot is a copy holding it, a volume made from the
 * snapshot holds it too (and is its own size); initiators [] empty the ACL, the target
 * stays, A's live session is cut and A is refused again; extend grows the file and the
 * LUN (made again, no session), so the next attach sees the new size; after a tgtd kill
 * and restart the next report finds every volume's target missing and they are back (and
 * a resync alone brings them back too); twelve
 * volumes exported concurrently get twelve targets with distinct tids, each admitting its
 * initiator, and go again when unclaimed; a resync removes an unclaimed file and target
 * and never a claimed one; an unclaimed volume whose target has a live session is left
 * (file and target); deleting a volume with a live session is the ERROR "in use" (the
 * file stays), once the session ended the target and file go; a volume bigger than the
 * disk is the ERROR with the reason and leaves nothing, made from a snapshot too (the
 * copy it made is removed); a volume or snapshot whose data is missing while the spec
 * does not say `create` is the ERROR "data missing (<path>)" and nothing is made (no
 * file; its target keeps the empty ACL of its creation, the attach not served); an agent whose volumes_dir is a symlink to the directory keeps the
 * target made on the real path (same tid, A still reads); CHAP rotated (another user in
 * the spec): the old credentials are refused, the new ones get in, only the new account
 * is left in tgtd, and an account bound before the volume's is removed without tgtd
 * crashing (tgt 1.0.85 segfaults on unbinding it); a volume get_host_volumes leaves out
 * but get_volume_info knows survives a resync (file, target, A's login); an unclaimed id
 * reports nothing more (the report count is unchanged). Every status carries the spec's
 * revision.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { volumeHooks } from '../../agents/volume/agent.ts';
import { targetIqn, type VolumeSpec } from '../../contracts/volume.ts';
import type { AgentHooks } from '../../core/agent.ts';
import { compileConfig } from '../../core/config.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { parseTargets } from '../../host/tgt/show.ts';
import { runCommand } from '../helpers/cluster.ts';
import { tempDir, waitFor } from '../helpers/env.ts';
import { fakeVolumeApi, type TestTgtd, testTgtd } from './volume-agent-harness.ts';

const GIB = 1024 ** 3;
const A = 'iqn.2010-10.org.kumo:host-a';
const B = 'iqn.2010-10.org.kumo:host-b';
const USER = 'kumoTestUser01234567';
const SECRET = 'kumoTestSecret01';

describe('kumo-volume-agent on a real host (file backend, tgtd, fake broker)', {
  timeout: 180_000,
}, () => {
  const tmp = tempDir('kumo-volume-');
  const dir = join(tmp.path, 'volumes');
  const api = fakeVolumeApi();
  const { volumes, snapshots, reconcile, last } = api;
  let tgtd: TestTgtd;
  let portal = 0;
  let session: ChildProcess | undefined;
  let hooks: AgentHooks;

  const showTargets = () => tgtd.show();
  const hasTarget = (id: string) => tgtd.hasTarget(id);
  const targetOf = async (id: string) =>
    parseTargets(await showTargets()).find((t) => t.iqn === targetIqn(id));
  const path = (name: string) => join(dir, name);
  const iscsiUrl = (id: string, secret = SECRET) =>
    `iscsi://${USER}%${secret}@127.0.0.1:${portal}/${targetIqn(id)}/1`;
  const inq = (initiator: string, id: string, secret?: string) =>
    runCommand(['iscsi-inq', '-i', initiator, iscsiUrl(id, secret)], {}, 20_000);
  const imageOpts = (initiator: string, id: string) =>
    [
      'driver=iscsi',
      'transport=tcp',
      `portal=127.0.0.1:${portal}`,
      `target=${targetIqn(id)}`,
      'lun=1',
      `user=${USER}`,
      `password=${SECRET}`,
      `initiator-name=${initiator}`,
    ].join(',');
  const qemuIo = (initiator: string, id: string, cmd: string) =>
    runCommand(['qemu-io', '-c', cmd, '--image-opts', imageOpts(initiator, id)], {}, 30_000);
  const readFile = (file: string, cmd: string) =>
    runCommand(['qemu-io', '-r', '-f', 'raw', '-c', cmd, file], {}, 30_000);

  const config = (volumesDir = dir) =>
    compileConfig(
      [
        '[DEFAULT]',
        'host = volume-test-host',
        `state_path = ${tmp.path}`,
        '[volume]',
        'volume_driver = file',
        `volumes_dir = ${volumesDir}`,
        'volume_clear = zero',
        'target_ip_address = 127.0.0.1',
        `target_port = ${portal}`,
        `tgt_control_port = ${tgtd.control}`,
      ].join('\n'),
    );

  function volume(o: Partial<VolumeSpec> = {}): VolumeSpec {
    const spec: VolumeSpec = {
      id: randomUUID(),
      size_gb: 1,
      backend: 'file',
      source: null,
      auth: { username: USER, secret: SECRET },
      initiators: [],
      create: true,
      deleting: false,
      revision: 1,
      ...o,
    };
    volumes.set(spec.id, spec);
    return spec;
  }
  function change(spec: VolumeSpec, o: Partial<VolumeSpec>) {
    Object.assign(spec, o, { revision: spec.revision + 1 });
  }

  before(async () => {
    tgtd = await testTgtd(tmp.path);
    portal = tgtd.portal;
    hooks = await volumeHooks({
      config: config(),
      runner: createCommandRunner(),
      log: silentLogger(),
      broker: api.broker,
    });
    await api.attach(hooks);
  });
  after(async () => {
    session?.kill('SIGKILL');
    await tgtd?.stop();
    tmp.cleanup();
  });

  const v1 = () => volumes.get(V1) as VolumeSpec;
  let V1 = '';

  test('a volume is a sparse file of its size, its target made with an empty ACL', async () => {
    V1 = volume().id;
    await reconcile('volume', V1);
    assert.equal(statSync(path(`volume-${V1}`)).size, GIB);
    assert.ok(statSync(path(`volume-${V1}`)).blocks * 512 < GIB / 100, 'sparse');
    const t = await targetOf(V1);
    assert.equal(t?.luns.find((l) => l.lun === 1)?.backingStore, path(`volume-${V1}`));
    assert.deepEqual([t?.accounts, t?.acl], [[USER], []]);
    const nobody = await inq(A, V1);
    assert.notEqual(nobody.code, 0, 'tgtd admits nobody without an ACL entry');
    assert.match(nobody.stderr + nobody.stdout, /Target not found/);
    assert.deepEqual(last('volume', V1), {
      resource: 'volume',
      id: V1,
      status: 'ACTIVE',
      revision: 1,
    });
    const conf = await hooks.configurations();
    assert.equal(conf.volume_backend_name, 'file');
    assert.equal(conf.volumes, 1);
    assert.equal(conf.target_portal, `127.0.0.1:${portal}`);
    assert.ok(
      typeof conf.free_capacity_gb === 'number' && typeof conf.total_capacity_gb === 'number',
    );
    assert.ok((conf.total_capacity_gb as number) > 0);
  });

  test('initiators [A]: A with the CHAP credentials gets in; a wrong secret and B do not', async () => {
    change(v1(), { initiators: [A] });
    await reconcile('volume', V1);
    assert.deepEqual(last('volume', V1), {
      resource: 'volume',
      id: V1,
      status: 'ACTIVE',
      revision: 2,
    });
    const shown = await showTargets();
    assert.match(shown, new RegExp(`Backing store path: ${path(`volume-${V1}`)}`));
    assert.match(shown, new RegExp(`Account information:\\s+${USER}`));
    assert.match(shown, new RegExp(`ACL information:\\s+${A.replaceAll('.', '\\.')}`));
    const ok = await inq(A, V1);
    assert.equal(ok.code, 0, ok.stderr);
    const badSecret = await inq(A, V1, 'wrongSecret01234');
    assert.notEqual(badSecret.code, 0);
    assert.match(badSecret.stderr + badSecret.stdout, /Authentication failure/);
    const other = await inq(B, V1);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr + other.stdout, /Target not found/);
  });

  test('data written through the target is in the file', async () => {
    const w = await qemuIo(A, V1, 'write -P 0x5a 0 1M');
    assert.equal(w.code, 0, w.stderr + w.stdout);
    const r = await qemuIo(A, V1, 'read -P 0x5a 0 1M');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /verification failed/);
    const f = await readFile(path(`volume-${V1}`), 'read -P 0x5a 0 1M');
    assert.doesNotMatch(f.stdout + f.stderr, /verification failed|Could not/);
  });

  let S1 = '';
  let V2 = '';
  test('a snapshot is a copy holding the data; a volume from it holds it too', async () => {
    S1 = randomUUID();
    snapshots.set(S1, {
      id: S1,
      volume_id: V1,
      size_gb: 1,
      backend: 'file',
      create: true,
      deleting: false,
      revision: 1,
    });
    await reconcile('snapshot', S1);
    assert.deepEqual(last('snapshot', S1), {
      resource: 'snapshot',
      id: S1,
      status: 'ACTIVE',
      revision: 1,
    });
    const s = await readFile(path(`snapshot-${S1}`), 'read -P 0x5a 0 1M');
    assert.doesNotMatch(s.stdout + s.stderr, /verification failed|Could not/);
    V2 = volume({ size_gb: 2, source: { kind: 'snapshot', id: S1 } }).id;
    await reconcile('volume', V2);
    assert.equal(last('volume', V2)?.status, 'ACTIVE');
    assert.equal(statSync(path(`volume-${V2}`)).size, 2 * GIB);
    const r = await readFile(path(`volume-${V2}`), 'read -P 0x5a 0 1M');
    assert.doesNotMatch(r.stdout + r.stderr, /verification failed|Could not/);
  });

  test("initiators []: the target stays with an empty ACL, A's live session is cut", async () => {
    const live = spawn('qemu-io', ['--image-opts', imageOpts(A, V1)], { stdio: 'pipe' });
    try {
      await waitFor('a session of A', async () => ((await targetOf(V1))?.sessions.length ?? 0) > 0);
      change(v1(), { initiators: [] });
      await reconcile('volume', V1);
      const t = await targetOf(V1);
      assert.deepEqual([t?.accounts, t?.acl, t?.sessions], [[USER], [], []]);
      await new Promise((r) => setTimeout(r, 3000));
      assert.deepEqual((await targetOf(V1))?.sessions, [], 'A could not log in again');
      const refused = await inq(A, V1);
      assert.match(refused.stderr + refused.stdout, /Target not found/);
    } finally {
      live.kill('SIGKILL');
    }
  });

  test('extend grows the file and the LUN: the next attach sees the new size', async () => {
    change(v1(), { size_gb: 2 });
    await reconcile('volume', V1);
    assert.equal(statSync(path(`volume-${V1}`)).size, 2 * GIB);
    assert.deepEqual(last('volume', V1), {
      resource: 'volume',
      id: V1,
      status: 'ACTIVE',
      revision: 4,
    });
    assert.equal((await targetOf(V1))?.luns.find((l) => l.lun === 1)?.sizeBytes, 2147e6);
    change(v1(), { initiators: [A] });
    await reconcile('volume', V1);
    const len = await qemuIo(A, V1, 'length');
    assert.match(len.stdout, /^2 GiB$/m, len.stderr);
    change(v1(), { initiators: [] });
    await reconcile('volume', V1);
  });

  test("tgtd killed and restarted: the next report re-exports every volume's target", async () => {
    change(v1(), { initiators: [A] });
    await reconcile('volume', V1);
    assert.equal(await hasTarget(V1), true);
    await tgtd.kill();
    await tgtd.start();
    assert.equal(await hasTarget(V1), false);
    await hooks.configurations();
    await api.drain();
    assert.equal(await hasTarget(V1), true);
    assert.deepEqual((await targetOf(V2))?.acl, [], 'the unattached V2 too, admitting nobody');
    assert.equal((await inq(A, V1)).code, 0);
    await tgtd.kill();
    await tgtd.start();
    await api.resync();
    assert.equal(await hasTarget(V1), true, 'a resync re-exports it too');
    assert.equal(await hasTarget(V2), true);
    assert.equal((await inq(A, V1)).code, 0);
  });

  test('twelve volumes exported at once: each its own target and tid', async () => {
    const many = Array.from({ length: 12 }, () => volume({ initiators: [B] }).id);
    await Promise.all(many.map((id) => reconcile('volume', id)));
    const shown = await showTargets();
    const tids = [...shown.matchAll(/^Target (\d+): /gm)].map((m) => m[1]);
    assert.equal(new Set(tids).size, tids.length);
    for (const id of many) {
      assert.ok(shown.includes(`: ${targetIqn(id)}\n`), id);
      assert.equal(api.last('volume', id)?.status, 'ACTIVE');
      assert.equal((await inq(B, id)).code, 0);
      volumes.delete(id);
    }
    await api.resync();
    for (const id of many) assert.equal(existsSync(path(`volume-${id}`)), false);
    assert.equal(await hasTarget(many[0] as string), false);
  });

  test('a resync removes an unclaimed file and target, never a claimed one', async () => {
    const stray = randomUUID();
    writeFileSync(path(`volume-${stray}`), '');
    const orphan = randomUUID();
    await tgtd.tgtadm(['--op', 'new', '--mode', 'target', '--tid', '99', '-T', targetIqn(orphan)]);
    mkdirSync(join(tmp.path, 'other'), { recursive: true });
    writeFileSync(path('not-a-volume'), 'x');
    await api.resync();
    assert.equal(existsSync(path(`volume-${stray}`)), false);
    assert.equal(await hasTarget(orphan), false);
    assert.ok(existsSync(path('not-a-volume')), 'a file not named volume-<uuid> stays');
    assert.ok(existsSync(path(`volume-${V1}`)) && existsSync(path(`volume-${V2}`)));
    assert.ok(existsSync(path(`snapshot-${S1}`)));
    assert.equal(await hasTarget(V1), true);
  });

  test('a live session: unclaimed, the volume is kept; deleting it is the ERROR "in use"', async () => {
    session = spawn('qemu-io', ['--image-opts', imageOpts(A, V1)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    await waitFor('a session', async () => /I_T nexus: \d+/.test(await showTargets()));
    const spec = v1();
    volumes.delete(V1);
    await api.resync();
    assert.ok(existsSync(path(`volume-${V1}`)));
    assert.equal(await hasTarget(V1), true);
    volumes.set(V1, spec);
    change(spec, { deleting: true });
    await reconcile('volume', V1);
    const s = last('volume', V1);
    assert.equal(s?.status, 'ERROR');
    assert.equal(s?.revision, spec.revision);
    assert.match(s?.reason ?? '', /in use: 1 iSCSI session/);
    assert.ok(existsSync(path(`volume-${V1}`)));
    session.kill('SIGKILL');
    await waitFor('no session', async () => !/I_T nexus: \d+/.test(await showTargets()));
  });

  test('deleting without a session: target, then file; ACTIVE with the revision', async () => {
    change(v1(), {});
    await reconcile('volume', V1);
    assert.equal(await hasTarget(V1), false);
    assert.equal(existsSync(path(`volume-${V1}`)), false);
    assert.deepEqual(last('volume', V1), {
      resource: 'volume',
      id: V1,
      status: 'ACTIVE',
      revision: v1().revision,
    });
    const reports = () => api.statuses.filter((r) => r.resource === 'volume' && r.id === V1).length;
    const before = reports();
    volumes.delete(V1);
    await reconcile('volume', V1);
    assert.equal(reports(), before, 'nothing more reported for an unclaimed id');
  });

  test('a volume bigger than the disk: the ERROR with the reason, nothing left', async () => {
    const big = volume({ size_gb: 16_000 });
    await reconcile('volume', big.id);
    const s = last('volume', big.id);
    assert.equal(s?.status, 'ERROR');
    assert.match(s?.reason ?? '', /insufficient free space/);
    assert.equal(existsSync(path(`volume-${big.id}`)), false);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.')),
      [],
    );
  });

  test('a volume from a snapshot bigger than the disk: the ERROR, the copy removed', async () => {
    const big = volume({ size_gb: 16_000, source: { kind: 'snapshot', id: S1 } });
    await reconcile('volume', big.id);
    const s = last('volume', big.id);
    assert.equal(s?.status, 'ERROR');
    assert.match(s?.reason ?? '', /insufficient free space/);
    assert.equal(existsSync(path(`volume-${big.id}`)), false, 'the copy is removed');
    assert.ok(existsSync(path(`snapshot-${S1}`)), 'the source stays');
    await reconcile('volume', big.id);
    assert.equal(existsSync(path(`volume-${big.id}`)), false, 'never taken for the volume');
  });

  test('data missing while not creating: the ERROR naming the file, nothing made or admitted', async () => {
    const lost = volume();
    await reconcile('volume', lost.id);
    assert.equal(last('volume', lost.id)?.status, 'ACTIVE');
    rmSync(path(`volume-${lost.id}`));
    change(lost, { create: false, initiators: [A] });
    await reconcile('volume', lost.id);
    assert.deepEqual(last('volume', lost.id), {
      resource: 'volume',
      id: lost.id,
      status: 'ERROR',
      reason: `data missing (${path(`volume-${lost.id}`)})`,
      revision: lost.revision,
    });
    assert.equal(existsSync(path(`volume-${lost.id}`)), false);
    assert.deepEqual(
      (await targetOf(lost.id))?.acl,
      [],
      'the target of its creation, A not admitted',
    );
    const snap = randomUUID();
    snapshots.set(snap, {
      id: snap,
      volume_id: V2,
      size_gb: 1,
      backend: 'file',
      create: false,
      deleting: false,
      revision: 4,
    });
    await reconcile('snapshot', snap);
    assert.equal(last('snapshot', snap)?.reason, `data missing (${path(`snapshot-${snap}`)})`);
    assert.equal(existsSync(path(`snapshot-${snap}`)), false);
    snapshots.delete(snap);
    volumes.delete(lost.id);
  });

  test('volumes_dir through a symlink: the same file after realpath, the live target is kept', async () => {
    const shared = volume({ initiators: [A] });
    await reconcile('volume', shared.id);
    assert.equal((await inq(A, shared.id)).code, 0);
    const tidOf = async () =>
      new RegExp(`^Target (\\d+): ${targetIqn(shared.id).replaceAll('.', '\\.')}$`, 'm').exec(
        await showTargets(),
      )?.[1];
    const tid = await tidOf();
    const link = join(tmp.path, 'volumes-link');
    symlinkSync(dir, link);
    const linked = await volumeHooks({
      config: config(link),
      runner: createCommandRunner(),
      log: silentLogger(),
      broker: api.broker,
    });
    change(shared, { create: false });
    await linked.reconcile?.('volume', shared.id);
    assert.equal(last('volume', shared.id)?.status, 'ACTIVE');
    assert.ok(tid !== undefined && (await tidOf()) === tid, 'the target was not made again');
    assert.match(
      await showTargets(),
      new RegExp(`Backing store path: ${path(`volume-${shared.id}`)}`),
    );
    assert.equal((await inq(A, shared.id)).code, 0);
    volumes.delete(shared.id);
    await reconcile('volume', shared.id);
    assert.equal(await hasTarget(shared.id), false);
  });

  test('CHAP rotated: the old credentials are refused, the new ones get in, the old account is gone', async () => {
    const one = { username: 'rotUserOne0123456789', secret: 'rotSecretOne0123' };
    const two = { username: 'rotUserTwo0123456789', secret: 'rotSecretTwo0123' };
    const rot = volume({ initiators: [A], auth: one });
    const login = (c: typeof one) =>
      runCommand(
        [
          'iscsi-inq',
          '-i',
          A,
          `iscsi://${c.username}%${c.secret}@127.0.0.1:${portal}/${targetIqn(rot.id)}/1`,
        ],
        {},
        20_000,
      );
    await reconcile('volume', rot.id);
    assert.equal((await login(one)).code, 0);
    change(rot, { create: false, auth: two });
    await reconcile('volume', rot.id);
    assert.deepEqual(last('volume', rot.id), {
      resource: 'volume',
      id: rot.id,
      status: 'ACTIVE',
      revision: rot.revision,
    });
    const old = await login(one);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr + old.stdout, /Authentication failure/);
    const now = await login(two);
    assert.equal(now.code, 0, now.stderr);
    const accounts = (await tgtd.tgtadm(['--op', 'show', '--mode', 'account'])).stdout;
    assert.ok(accounts.includes(two.username) && !accounts.includes(one.username), accounts);
    assert.match(
      await showTargets(),
      new RegExp(`Account information:\\s+${two.username}\\n\\s+ACL information:\\s+${A}`),
    );
    const three = 'rotUserThree01234567';
    const tid = /^Target (\d+): /m.exec(
      (await showTargets()).split('\n').find((l) => l.includes(targetIqn(rot.id))) ?? '',
    )?.[1] as string;
    for (const args of [
      ['unbind', '--tid', tid, '--user', two.username],
      ['new', '--user', three, '--password', 'rotSecretThree01'],
      ['bind', '--tid', tid, '--user', three],
      ['bind', '--tid', tid, '--user', two.username],
    ]) {
      const r = await tgtd.tgtadm([
        '--op',
        args[0] as string,
        '--mode',
        'account',
        ...args.slice(1),
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    change(rot, {});
    await reconcile('volume', rot.id);
    assert.equal(last('volume', rot.id)?.status, 'ACTIVE', last('volume', rot.id)?.reason);
    assert.match(await showTargets(), new RegExp(`Account information:\\s+${two.username}\\n`));
    assert.equal((await login(two)).code, 0, 'tgtd still up (an account bound before another)');
    volumes.delete(rot.id);
    await reconcile('volume', rot.id);
    assert.equal(await hasTarget(rot.id), false);
  });

  test('a resync never removes a volume get_host_volumes leaves out but get_volume_info knows', async () => {
    const known = volume({ initiators: [A] });
    await reconcile('volume', known.id);
    assert.equal(await hasTarget(known.id), true);
    api.unlisted.add(known.id);
    await api.resync();
    assert.ok(existsSync(path(`volume-${known.id}`)), 'the file stays');
    assert.equal(await hasTarget(known.id), true, 'the target stays');
    assert.equal((await inq(A, known.id)).code, 0);
    assert.equal(last('volume', known.id)?.status, 'ACTIVE');
    api.unlisted.delete(known.id);
    volumes.delete(known.id);
    await reconcile('volume', known.id);
    assert.equal(existsSync(path(`volume-${known.id}`)), false);
  });
});
