/**
 * The pool haproxy's maxconn against the open file limit, with the real haproxy 2.6 in a
 * namespace this test creates (the VIP on its loopback; nothing touches the root
 * namespace's interfaces). openFileLimit reads this process's hard RLIMIT_NOFILE (what
 * `ulimit -Hn` says); a pool whose VIP asks for 1,000,000 connections is rendered for a file
 * limit of 2000 and starts under that limit (prlimit) serving the lowered maxconn, while the
 * naive 2 × maxconn = limit is what haproxy refuses ("Cannot raise FD limit").
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type DesiredPool, desiredPool, stateDirOf } from '../../agents/lbaas/desired.ts';
import { haproxyPaths } from '../../agents/lib/haproxy-instance.ts';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import {
  checkCommand,
  findHaproxy,
  haproxyExpected,
  openFileLimit,
  startCommand,
} from '../../host/haproxy/daemon.ts';
import { showInfo } from '../../host/haproxy/stats.ts';
import { stopByPidfile } from '../../host/process/daemon.ts';
import { tempDir } from '../helpers/env.ts';
import { POOL, poolOf, settingsOf } from '../helpers/lbaas-fixtures.ts';

const runner = createCommandRunner();
const NS = `hm${randomBytes(3).toString('hex')}`;
const LIMIT = 2000;

/** haproxy started with `-D` under a hard and soft open file limit of LIMIT. */
const startLimited = (config: string, pidfile: string) => {
  const spec = startCommand({ config, pidfile }, NS);
  return runner.run({ ...spec, argv: ['prlimit', `--nofile=${LIMIT}:${LIMIT}`, ...spec.argv] });
};

describe('pool haproxy maxconn within the open file limit', () => {
  const dir = tempDir('khm-');
  const settings = settingsOf(`${dir.path}/lbaas`, { fileLimit: LIMIT });
  const paths = haproxyPaths(stateDirOf(settings, POOL));

  before(async () => {
    await runner.run({ argv: ['ip', 'netns', 'add', NS] });
    for (const argv of [
      ['ip', 'addr', 'add', '10.80.0.100/24', 'dev', 'lo'],
      ['ip', 'link', 'set', 'lo', 'up'],
    ])
      await runner.run({ argv, netns: NS });
    mkdirSync(stateDirOf(settings, POOL), { recursive: true, mode: 0o750 });
  });

  after(async () => {
    await stopByPidfile(paths.pidfile, haproxyExpected(paths));
    await runner.run({ argv: ['ip', 'netns', 'del', NS] });
    dir.cleanup();
  });

  test('openFileLimit is this process’s hard limit of open files', async () => {
    const { stdout } = await runner.run({ argv: ['sh', '-c', 'ulimit -Hn'] });
    const want = stdout.trim() === 'unlimited' ? Number.POSITIVE_INFINITY : Number(stdout);
    assert.equal(await openFileLimit(), want);
  });

  test('a VIP limit above the file limit is served lowered; haproxy starts with it', async () => {
    const p = poolOf();
    (p.vip as NonNullable<typeof p.vip>).connection_limit = 1_000_000;
    const d = desiredPool(p, settings) as DesiredPool;
    assert.deepEqual(d.connectionCap, { asked: 1_000_000, served: 871 });
    writeFileSync(paths.config, d.haproxy.config);
    await runner.run(checkCommand(paths.config));
    await startLimited(paths.config, paths.pidfile);
    const pid = await findHaproxy(paths);
    assert.ok(pid !== null);
    const { info } = await showInfo(d.haproxy.statsSocket);
    assert.equal(info.Pid, String(pid));
    assert.equal(info.Maxconn, '871');
  });

  test('haproxy refuses to start when 2 × maxconn reaches the file limit', async () => {
    const config = `${dir.path}/naive.cfg`;
    const text = (desiredPool(poolOf(), settings) as DesiredPool).haproxy.config
      .replace(/maxconn \d+/, `maxconn ${LIMIT / 2}`)
      .replace(/bind 10\.80\.0\.100:80/, 'bind 10.80.0.100:81')
      .replace(/stats socket \S+/, `stats socket ${dir.path}/naive.sock`);
    writeFileSync(config, text);
    await assert.rejects(startLimited(config, `${dir.path}/naive.pid`), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.match(e.stderr, /Cannot raise FD limit/);
      return true;
    });
  });
});
