/**
 * host/tgt against the real tgtd 1.0.85: one tgtd of this file's own, daemonized with a pid
 * file, on an unused control port and a free loopback portal 127.0.0.1:<port>, file backing
 * stores made with `truncate -s` in a temporary directory. Clients are libiscsi's iscsi-inq
 * and qemu-io (qemu-block-extra), all on loopback.
 *
 * Under test: target + LUN 1 + CHAP account + initiator ACL built through tgtadm.ts and seen
 * by showTargets/showAccounts; the admitted initiator with the right secret reads the LUN's
 * inquiry data, a wrong secret is an "Authentication failure", another initiator is told
 * "Target not found", an unbound initiator is refused again; a qemu-io holding the LUN open
 * shows as a session (I_T nexus) with its address, a plain delete is then refused as
 * "active" and a forced one succeeds; creating what exists is a refusal tgtadmRefusal names;
 * a tgtd killed and restarted on the same ports answers with no targets; bad arguments are
 * TgtArgumentErrors and the runner logs no command; stopTgtd stops it gracefully.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TARGET_LUN, targetIqn } from '../../contracts/volume.ts';
import { CommandError, type CommandRunner, createCommandRunner } from '../../core/exec.ts';
import { signal } from '../../host/process/daemon.ts';
import {
  findTgtd,
  startTgtd,
  stopTgtd,
  type TgtdOptions,
  tgtVersion,
  unusedControlPort,
} from '../../host/tgt/daemon.ts';
import {
  bindAccount,
  bindInitiator,
  deleteAccount,
  deleteTarget,
  freeTid,
  newAccount,
  newLun,
  newTarget,
  showAccounts,
  showTargets,
  TgtArgumentError,
  type TgtControl,
  tgtadmRefusal,
  unbindInitiator,
} from '../../host/tgt/tgtadm.ts';
import { freePort } from '../helpers/cluster.ts';

const real = createCommandRunner();
const ran: string[][] = [];
/** The real runner, logging every argv it is asked to run. */
const runner: CommandRunner = {
  run(spec) {
    ran.push([...spec.argv]);
    return real.run(spec);
  },
};

const VOL = '3f6c2d8e-9a41-4b7c-8e2f-5d1a6b9c0e21';
const IQN = targetIqn(VOL);
const USER = 'Kumo0tgt0test0user01';
const SECRET = 'S3cretS3cretS3cr';
const A = 'iqn.2010-10.org.kumo:tgt-test-a';
const B = 'iqn.2010-10.org.kumo:tgt-test-b';

describe('tgt', () => {
  let dir: string;
  let opts: TgtdOptions;
  let t: TgtControl;
  let portal: string;
  let lunPath: string;

  const url = (secret: string) => `iscsi://${USER}%${secret}@${portal}/${IQN}/${TARGET_LUN}`;
  const inq = (initiator: string, secret = SECRET) =>
    real.run({ argv: ['iscsi-inq', '-i', initiator, url(secret)], timeoutMs: 15_000 });
  const loginFailure = async (initiator: string, secret: string, reason: RegExp) => {
    const e = await inq(initiator, secret).then(
      () => null,
      (err: unknown) => err,
    );
    assert.ok(e instanceof CommandError, `iscsi-inq as ${initiator} must fail`);
    assert.match(e.stderr, reason);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kumo-tgt-'));
    portal = `127.0.0.1:${await freePort()}`;
    opts = { controlPort: await unusedControlPort(real), portal, pidfile: join(dir, 'tgtd.pid') };
    t = { runner, controlPort: opts.controlPort };
    lunPath = join(dir, `volume-${VOL}`);
    await real.run({ argv: ['truncate', '-s', '64M', lunPath] });
    await startTgtd(real, opts);
  });

  after(async () => {
    if (opts) await stopTgtd(real, opts);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('tgtd answers with no targets and says its version', async () => {
    assert.deepEqual(await showTargets(t), []);
    assert.deepEqual(await showAccounts(t), []);
    assert.match((await tgtVersion(real)) ?? '', /^1\.\d+\.\d+$/);
  });

  test('target, LUN, CHAP account and ACL as showTargets reports them', async () => {
    const tid = freeTid(await showTargets(t));
    assert.equal(tid, 1);
    await newTarget(t, tid, IQN);
    await newLun(t, tid, TARGET_LUN, lunPath);
    await newAccount(t, USER, SECRET);
    await bindAccount(t, tid, USER);
    await bindInitiator(t, tid, A);
    const [target] = await showTargets(t);
    assert.equal(target?.iqn, IQN);
    assert.deepEqual(target?.luns.at(1), {
      lun: 1,
      sizeBytes: 67_000_000,
      backingStore: lunPath,
    });
    assert.deepEqual(target?.accounts, [USER]);
    assert.deepEqual(target?.acl, [A]);
    assert.deepEqual(target?.sessions, []);
    assert.deepEqual(await showAccounts(t), [USER]);
  });

  test('creating what exists, or no tgtd on the port, is a refusal tgtadmRefusal names', async () => {
    const refusal = (p: Promise<void>) => p.then(() => 'none', tgtadmRefusal);
    assert.equal(await refusal(newAccount(t, USER, SECRET)), 'exists');
    const err = await newAccount(t, USER, SECRET).then(
      () => null,
      (e: CommandError) => e,
    );
    assert.ok(err instanceof CommandError && err.argv.includes('********'), String(err));
    assert.ok(!`${err.message} ${err.argv.join(' ')}`.includes(SECRET), 'the secret is masked');
    assert.equal(await refusal(bindInitiator(t, 1, A)), 'exists');
    assert.equal(await refusal(newTarget(t, 2, IQN)), 'exists');
    assert.equal(await refusal(deleteTarget(t, 9, false)), 'not-found');
    const nobody = { runner, controlPort: await unusedControlPort(runner) };
    assert.equal(await showTargets(nobody).then(() => 'none', tgtadmRefusal), 'no-daemon');
  });

  test('the admitted initiator logs in with the right secret, nobody else', async () => {
    const { stdout } = await inq(A);
    assert.match(stdout, /Peripheral Device Type:DIRECT_ACCESS/);
    await loginFailure(A, 'WrongS3cretWrong', /Authentication failure/);
    await loginFailure(B, SECRET, /Target not found/);
  });

  test('unbinding an initiator refuses its next login', async () => {
    await bindInitiator(t, 1, B);
    await inq(B);
    await unbindInitiator(t, 1, B);
    assert.deepEqual((await showTargets(t))[0]?.acl, [A]);
    await loginFailure(B, SECRET, /Target not found/);
  });

  test('a connected client is a session; delete then needs --force', async () => {
    const client = holdSession(portal, IQN, A);
    try {
      const sessions = await waitFor(async () => (await showTargets(t))[0]?.sessions ?? []);
      assert.deepEqual(sessions, [{ initiator: A, address: '127.0.0.1' }]);
      const refused = await deleteTarget(t, 1, false).then(() => 'none', tgtadmRefusal);
      assert.equal(refused, 'active');
      await deleteTarget(t, 1, true);
      assert.deepEqual(await showTargets(t), []);
    } finally {
      client.kill('SIGKILL');
    }
    await deleteAccount(t, USER);
    assert.deepEqual(await showAccounts(t), []);
  });

  test('a tgtd killed and restarted has no targets', async () => {
    await newTarget(t, 1, IQN);
    await newLun(t, 1, TARGET_LUN, lunPath);
    assert.equal((await showTargets(t)).length, 1);
    const pid = await findTgtd(opts);
    assert.ok(pid !== null, 'our tgtd is found by its pid file');
    signal(pid, 'SIGKILL');
    await waitFor(async () => ((await findTgtd(opts)) === null ? [true] : []));
    const again = await startTgtd(real, opts);
    assert.notEqual(again, pid);
    assert.deepEqual(await showTargets(t), []);
    assert.deepEqual(await showAccounts(t), []);
  });

  test('bad arguments are TgtArgumentErrors and run nothing', async () => {
    const before = ran.length;
    const refusals: [string, () => Promise<void>][] = [
      ['tid', () => newTarget(t, 0, IQN)],
      ['targetname', () => newTarget(t, 1, `${IQN}\n`)],
      ['backing_store', () => newLun(t, 1, 1, `${lunPath},bsopts=x`)],
      ['user', () => newAccount(t, 'short', SECRET)],
      ['password', () => newAccount(t, USER, 'p;rm -rf /x12345')],
      ['initiator_name', () => bindInitiator(t, 1, 'iqn.2010-10.org.kumo:a b')],
    ];
    for (const [field, call] of refusals)
      await assert.rejects(
        call(),
        (e: unknown) => e instanceof TgtArgumentError && e.field === field,
      );
    assert.deepEqual(ran.slice(before), [], 'no tgtadm command ran');
  });

  test('stopTgtd stops it gracefully', async () => {
    const pid = await findTgtd(opts);
    assert.ok(pid !== null);
    await newTarget(t, 1, IQN);
    assert.equal(await stopTgtd(real, opts), 'terminated');
    assert.equal(await findTgtd(opts), null);
    await startTgtd(real, opts);
  });
});

/** A qemu-io holding LUN 1 open (an iSCSI session) until killed. */
function holdSession(portal: string, iqn: string, initiator: string) {
  const [host, port] = portal.split(':');
  const image = [
    'driver=iscsi',
    'transport=tcp',
    `portal=${host}:${port}`,
    `target=${iqn}`,
    `lun=${TARGET_LUN}`,
    `user=${USER}`,
    `password=${SECRET}`,
    `initiator-name=${initiator}`,
  ].join(',');
  const child: ChildProcessWithoutNullStreams = spawn('qemu-io', ['--image-opts', image]);
  child.stdin.on('error', () => {});
  return child;
}

/** Polls until `probe` gives a non-empty list (10 s), then returns it. */
async function waitFor<T>(probe: () => Promise<T[]>): Promise<T[]> {
  const until = Date.now() + 10_000;
  for (;;) {
    const got = await probe();
    if (got.length > 0 || Date.now() >= until) return got;
    await sleep(50);
  }
}
