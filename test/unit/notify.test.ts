/**
 * core/notify.ts against a real sd_notify receiver: a python3 AF_UNIX SOCK_DGRAM socket
 * that reads with recvmsg(), closes SCM_RIGHTS fds (releasing systemd-notify's BARRIER=1)
 * and prints every received assignment on its own line.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { CommandRunner } from '../../core/exec.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createNotifier, sanitizeNotifyValue, watchdogUsec } from '../../core/notify.ts';

const RECEIVER = `
import array, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("LISTENING", flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % a.itemsize])
            fds.extend(a)
    for line in msg.decode("utf-8", "replace").split("\\n"):
        print("MSG " + line, flush=True)
    for fd in fds:
        os.close(fd)
`;

function requireTool(argv: string[], why: string): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    assert.fail(
      `${argv[0]} is required by this test (${why}) but \`${argv.join(' ')}\` failed: ` +
        `${r.error?.message ?? r.stderr}`,
    );
  }
}

class Receiver {
  readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  readonly proc: ChildProcessWithoutNullStreams;
  constructor(proc: ChildProcessWithoutNullStreams) {
    this.proc = proc;
    let buf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** Messages received so far (without the "MSG " prefix). */
  messages(): string[] {
    return this.lines.filter((l) => l.startsWith('MSG ')).map((l) => l.slice(4));
  }
  async waitFor(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0)
        assert.fail(`timed out waiting for ${what}; got ${JSON.stringify(this.lines)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

describe('createNotifier with a real receiver', () => {
  let dir: string;
  let socketPath: string;
  let rx: Receiver;

  before(async () => {
    requireTool(['systemd-notify', '--version'], 'core/notify.ts sends through it');
    requireTool(['python3', '--version'], 'it runs the sd_notify receiver');
    dir = mkdtempSync(join(tmpdir(), 'kumo-notify-'));
    socketPath = join(dir, 'notify.sock');
    const proc = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: 'pipe' });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    rx = new Receiver(proc);
    const exited = new Promise<never>((_, reject) =>
      proc.on('exit', (code) => reject(new Error(`receiver exited ${code}: ${stderr}`))),
    );
    await Promise.race([rx.waitFor(() => rx.lines.includes('LISTENING'), 'receiver'), exited]);
  });

  after(() => {
    rx?.proc.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('READY, STATUS, WATCHDOG and STOPPING arrive in order, sanitized', async () => {
    const n = createNotifier({
      runner: createCommandRunner(),
      env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '200000' },
      log: silentLogger(),
    });
    assert.equal(n.enabled, true);

    const t0 = Date.now();
    await n.ready('up\nMAINPID=1\u0007now');
    assert.ok(Date.now() - t0 < 3000, 'barrier not released by closing the fd');
    // The receiver printed the message before closing the barrier fd; Node reads its
    // stdout asynchronously, hence the wait.
    await rx.waitFor(() => rx.messages().includes('BARRIER=1'), 'READY=1 and its barrier');
    const got = rx.messages();
    assert.ok(got.includes('READY=1'), `READY=1 missing: ${JSON.stringify(got)}`);
    assert.ok(got.includes('STATUS=up MAINPID=1 now'), `sanitized STATUS missing: ${got}`);
    assert.ok(!got.includes('MAINPID=1'), 'a newline in a status injected an assignment');
    assert.ok(got.includes('BARRIER=1'), 'systemd-notify sent no BARRIER=1 (was --no-block used?)');

    await n.status('serving 3 networks');
    await rx.waitFor(() => rx.messages().includes('STATUS=serving 3 networks'), 'STATUS');

    // WATCHDOG_USEC=200000 → a ping at once, then every 100 ms.
    const stop = n.startWatchdog();
    await rx.waitFor(
      () => rx.messages().filter((m) => m === 'WATCHDOG=1').length >= 3,
      'three WATCHDOG=1 pings',
    );
    stop();
    await new Promise((r) => setTimeout(r, 300)); // let an in-flight ping land
    const pings = rx.messages().filter((m) => m === 'WATCHDOG=1').length;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(rx.messages().filter((m) => m === 'WATCHDOG=1').length, pings, 'pings after stop');

    await n.watchdog();
    await rx.waitFor(
      () => rx.messages().filter((m) => m === 'WATCHDOG=1').length === pings + 1,
      'one more WATCHDOG=1 from watchdog()',
    );

    await n.stopping();
    await rx.waitFor(() => rx.messages().includes('STOPPING=1'), 'STOPPING=1');
    const all = rx.messages().filter((m) => m !== 'BARRIER=1');
    assert.equal(all.at(-1), 'STOPPING=1');
    assert.ok(all.indexOf('READY=1') < all.indexOf('STOPPING=1'));
  });

  test('a failed send is logged at warn, not thrown', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const n = createNotifier({
      runner: createCommandRunner(),
      env: { NOTIFY_SOCKET: join(dir, 'nobody-listens.sock') },
      log: pino({ level: 'warn' }, sink),
    });
    await n.ready('x');
    await n.status('y');
    assert.equal(lines.length, 2, `expected two warnings, got ${lines.join('')}`);
    const first = JSON.parse(lines[0] as string) as { level: number; msg: string };
    assert.equal(first.level, 40);
    assert.equal(first.msg, 'sd_notify failed');
  });
});

describe('createNotifier without NOTIFY_SOCKET', () => {
  test('is disabled and runs nothing', async () => {
    const runner: CommandRunner = {
      run(spec) {
        throw new Error(`runner must not be called, got ${spec.argv.join(' ')}`);
      },
    };
    const n = createNotifier({ runner, env: { WATCHDOG_USEC: '200000' }, log: silentLogger() });
    assert.equal(n.enabled, false);
    await n.ready('x');
    await n.status('y');
    await n.watchdog();
    await n.stopping();
    const stop = n.startWatchdog();
    await new Promise((r) => setTimeout(r, 250));
    stop();
  });
});

describe('unsetEnv', () => {
  test('removes the variables from env but keeps notifying and pinging', async () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: '/nonexistent',
      WATCHDOG_USEC: '60000000',
      WATCHDOG_PID: String(process.pid),
      OTHER: 'kept',
    };
    const calls: string[][] = [];
    const runner: CommandRunner = {
      async run(spec) {
        calls.push([...spec.argv]);
        return { stdout: '', stderr: '', exitCode: 0 };
      },
    };
    const n = createNotifier({ runner, env, log: silentLogger(), unsetEnv: true });
    assert.deepEqual(env, { OTHER: 'kept' });
    assert.equal(n.enabled, true);
    const stop = n.startWatchdog(); // pings once at start
    stop();
    await n.stopping();
    assert.deepEqual(calls, [
      ['env', 'NOTIFY_SOCKET=/nonexistent', 'systemd-notify', 'WATCHDOG=1'],
      ['env', 'NOTIFY_SOCKET=/nonexistent', 'systemd-notify', 'STOPPING=1'],
    ]);
  });
});

describe('helpers', () => {
  test('sanitizeNotifyValue strips control characters and caps length', () => {
    assert.equal(sanitizeNotifyValue('a\nb\r\tc\u0000d\u2028e'), 'a b c d e');
    assert.equal(sanitizeNotifyValue('x'.repeat(2000)).length, 512);
  });

  test('watchdogUsec honours WATCHDOG_PID and rejects junk', () => {
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '200000' }), 200000);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' }, 2), null);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '2' }, 2), 200000);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '0' }), null);
    assert.equal(watchdogUsec({ WATCHDOG_USEC: '1e6' }), null);
    assert.equal(watchdogUsec({}), null);
  });
});
