/**
 * host/process against real detached processes started inside a network namespace this
 * test creates (needs root and `ip`).
 *
 * Invariants under test: a daemon started through the runner is found by its pid file only
 * while its cmdline carries the expected marker (a stale pid file naming another process
 * is never trusted or signalled), SIGHUP reaches it, `stop` escalates from SIGTERM to
 * SIGKILL, and a zombie left behind (this container's PID 1 does not reap) counts as gone.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCommandRunner } from '../../core/exec.ts';
import {
  findRunning,
  isRunning,
  procStat,
  readCmdline,
  readPid,
  signal,
  signalIfRunning,
  startDaemon,
  stop,
  stopByPidfile,
} from '../../host/process/daemon.ts';

const runner = createCommandRunner();
const tag = randomBytes(3).toString('hex');
const NS = `kumo-proc-${tag}`;
const dir = mkdtempSync(join(tmpdir(), 'kumo-proc-'));
const script = join(dir, 'daemon.sh');
const started: { pid: number; marker: string }[] = [];

/** A daemon: `sh daemon.sh MARKER MODE HUPLOG`, detached, its pid in `pidfile`. */
function daemonSpec(marker: string, mode: 'normal' | 'ignore-term', pidfile: string) {
  return {
    argv: [
      'sh',
      '-c',
      'sh "$0" "$1" "$2" "$3" </dev/null >/dev/null 2>&1 & echo $! > "$4"',
      script,
      marker,
      mode,
      join(dir, `${marker}.hup`),
      pidfile,
    ],
    netns: NS,
  };
}

async function start(name: string, mode: 'normal' | 'ignore-term' = 'normal') {
  const marker = `kumo-proc-test-${tag}-${name}`;
  const pidfile = join(dir, `${name}.pid`);
  const pid = await startDaemon(runner, daemonSpec(marker, mode, pidfile), {
    pidfile,
    expected: marker,
  });
  started.push({ pid, marker });
  return { pid, marker, pidfile };
}

const gone = async (pid: number) => {
  const s = await procStat(pid);
  return s === null || s.state === 'Z';
};

describe('host/process with real daemons in a namespace', () => {
  before(() => {
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        'trap \'echo hup >> "$3"\' HUP',
        '[ "$2" = ignore-term ] && trap "" TERM',
        'while :; do sleep 0.05; done',
        '',
      ].join('\n'),
    );
    execFileSync('ip', ['netns', 'add', NS]);
  });
  after(async () => {
    for (const { pid, marker } of started)
      if (await isRunning(pid, marker)) process.kill(pid, 'SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  });

  test('readPid: missing, garbage, pid 0/1 and negative are null', async () => {
    const f = join(dir, 'x.pid');
    assert.equal(await readPid(f), null);
    for (const text of ['', 'abc\n', '0\n', '1\n', '-5\n', '12 13\n', '99999999999\n']) {
      writeFileSync(f, text);
      assert.equal(await readPid(f), null, JSON.stringify(text));
    }
    writeFileSync(f, '4242\n');
    assert.equal(await readPid(f), 4242);
  });

  test('startDaemon returns the detached daemon, running inside the namespace', async () => {
    const { pid, marker, pidfile } = await start('a');
    assert.equal(await isRunning(pid, marker), true);
    assert.equal(await isRunning(pid, `${marker}-other`), false);
    assert.equal(await findRunning(pidfile, marker), pid);
    const argv = await readCmdline(pid);
    assert.equal(argv?.[0], 'sh');
    assert.ok(argv?.includes(marker));
    const stat = await procStat(pid);
    assert.ok(stat && stat.state !== 'Z');
    assert.notEqual(stat.ppid, process.pid, 'detached: not our child');
    assert.equal(
      statSync(`/proc/${pid}/ns/net`).ino,
      statSync(`/run/netns/${NS}`).ino,
      'runs in the namespace',
    );
    await assert.rejects(
      startDaemon(runner, daemonSpec(marker, 'normal', pidfile), { pidfile, expected: marker }),
      /already runs/,
    );
  });

  test('SIGHUP reaches the daemon', async () => {
    const { pidfile, marker } = await start('b');
    assert.equal(await signalIfRunning(pidfile, marker, 'SIGHUP'), true);
    const log = join(dir, `${marker}.hup`);
    for (let i = 0; i < 100 && !existsSync(log); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readFileSync(log, 'utf8'), 'hup\n');
    assert.equal(await stopByPidfile(pidfile, marker), 'terminated');
  });

  test('a stale pid file naming another process is not trusted or signalled', async () => {
    const pidfile = join(dir, 'stale.pid');
    writeFileSync(pidfile, `${process.pid}\n`);
    const marker = `kumo-proc-test-${tag}-stale`;
    assert.equal(await isRunning(process.pid, marker), false);
    assert.equal(await findRunning(pidfile, marker), null);
    assert.equal(await signalIfRunning(pidfile, marker, 'SIGTERM'), false);
    assert.equal(await stop(process.pid, marker), 'not-running');
    // startDaemon replaces the stale pid file and reports the new daemon.
    const pid = await startDaemon(runner, daemonSpec(marker, 'normal', pidfile), {
      pidfile,
      expected: marker,
    });
    started.push({ pid, marker });
    assert.notEqual(pid, process.pid);
    assert.equal(await findRunning(pidfile, marker), pid);
    assert.equal(await stopByPidfile(pidfile, marker), 'terminated');
    assert.equal(existsSync(pidfile), false, 'pid file removed');
  });

  test('stop: SIGTERM, then SIGKILL for a daemon that ignores TERM; zombies count as gone', async () => {
    const a = started[0];
    assert.ok(a);
    assert.equal(await stop(a.pid, a.marker, { graceMs: 2000 }), 'terminated');
    assert.ok(await gone(a.pid));
    assert.equal(await isRunning(a.pid, a.marker), false);
    assert.equal(await stop(a.pid, a.marker), 'not-running', 'stopping twice is a no-op');

    const { pid, marker } = await start('stubborn', 'ignore-term');
    const t0 = Date.now();
    assert.equal(await stop(pid, marker, { graceMs: 300 }), 'killed');
    assert.ok(Date.now() - t0 >= 300);
    assert.ok(await gone(pid));
  });

  test('pids 0, 1 and negative are never signalled', () => {
    for (const pid of [0, 1, -1, 1.5]) assert.throws(() => signal(pid, 'SIGTERM'), /refusing/);
  });
});
