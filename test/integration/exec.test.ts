/**
 * core/exec.ts against real commands and a real network namespace (needs root and `ip`).
 *
 * Invariant under test: argv is passed verbatim (never through a shell) and every failure
 * is a CommandError that says which command failed and how.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CommandError, createCommandRunner, fullArgv } from '../../core/exec.ts';

const runner = createCommandRunner();

/** Asserts `p` rejects with a CommandError and returns it for further checks. */
async function commandError(p: Promise<unknown>): Promise<CommandError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CommandError, `expected CommandError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the command to fail');
}

describe('CommandRunner', () => {
  test('argv is passed verbatim, shell metacharacters and newlines included', async () => {
    const nasty = 'x; rm -rf / && echo pwned\n$(id) `id` "quoted" \'single\'\nlast line';
    const r = await runner.run({ argv: ['printf', '%s', nasty] });
    assert.equal(r.stdout, nasty);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stderr, '');
  });

  test('stdin is fed to the command (string and Buffer)', async () => {
    const r = await runner.run({ argv: ['cat'], stdin: 'line one\nline two\n' });
    assert.equal(r.stdout, 'line one\nline two\n');
    const bytes = Buffer.from([0x00, 0xff, 0x41]);
    const b = await runner.run({ argv: ['od', '-An', '-tx1'], stdin: bytes });
    assert.equal(b.stdout.trim(), '00 ff 41');
  });

  test('a non-zero exit is a CommandError with argv, exit code and stderr', async () => {
    const argv = ['sh', '-c', 'echo "it broke" >&2; exit 3'];
    const e = await commandError(runner.run({ argv }));
    assert.deepEqual(e.argv, argv);
    assert.equal(e.exitCode, 3);
    assert.equal(e.signal, null);
    assert.equal(e.timedOut, false);
    assert.equal(e.stderr, 'it broke\n');
    assert.match(e.message, /exited 3: it broke/);
    assert.ok(e.message.startsWith('sh -c'), e.message);
  });

  test('okExitCodes count as success', async () => {
    const r = await runner.run({ argv: ['sh', '-c', 'echo out; exit 2'], okExitCodes: [2] });
    assert.equal(r.exitCode, 2);
    assert.equal(r.stdout, 'out\n');
    const e = await commandError(runner.run({ argv: ['sh', '-c', 'exit 1'], okExitCodes: [2] }));
    assert.equal(e.exitCode, 1);
  });

  test('a command that outlives timeoutMs is killed and reported as timed out', async () => {
    const e = await commandError(runner.run({ argv: ['sleep', '5'], timeoutMs: 200 }));
    assert.equal(e.timedOut, true);
    assert.equal(e.signal, 'SIGKILL');
    assert.match(e.message, /timed out after 200 ms/);
  });

  test('the default timeout of the runner applies', async () => {
    const quick = createCommandRunner({ defaultTimeoutMs: 200 });
    const e = await commandError(quick.run({ argv: ['sleep', '5'] }));
    assert.equal(e.timedOut, true);
  });

  test('a missing binary is a CommandError naming ENOENT', async () => {
    const argv = ['kumo-no-such-binary-xyz', '--version'];
    const e = await commandError(runner.run({ argv }));
    assert.equal(e.exitCode, null);
    assert.deepEqual(e.argv, argv);
    assert.match(e.stderr, /ENOENT/);
    assert.match(e.message, /kumo-no-such-binary-xyz/);
  });

  test('an empty argv is refused', async () => {
    await assert.rejects(async () => runner.run({ argv: [] }), /empty argv/);
  });
});

describe('CommandRunner in a network namespace', () => {
  const ns = `kumo-exec-test-${randomBytes(4).toString('hex')}`;
  before(() => {
    try {
      execFileSync('ip', ['netns', 'add', ns], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(
        `cannot create netns ${ns} (this test needs root and iproute2): ${(e as Error).message}`,
      );
    }
  });
  after(() => {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  });

  test('runs inside the namespace: only lo is present', async () => {
    const r = await runner.run({ argv: ['ip', '-j', 'link'], netns: ns });
    const links = JSON.parse(r.stdout) as { ifname: string }[];
    assert.deepEqual(
      links.map((l) => l.ifname),
      ['lo'],
    );
    const host = JSON.parse((await runner.run({ argv: ['ip', '-j', 'link'] })).stdout) as unknown[];
    assert.ok(host.length >= 1, 'the host namespace is unaffected');
  });

  test('a failure inside the namespace names it', async () => {
    const e = await commandError(runner.run({ argv: ['sh', '-c', 'exit 4'], netns: ns }));
    assert.equal(e.netns, ns);
    assert.equal(e.exitCode, 4);
    assert.match(e.message, new RegExp(`\\(netns ${ns}\\) exited 4`));
  });

  test('an invalid namespace name throws before anything runs', async () => {
    for (const bad of ['../etc', 'a b', '-flag', 'x;reboot', '', 'n'.repeat(64)]) {
      assert.throws(() => fullArgv({ argv: ['true'], netns: bad }), /invalid netns name/, bad);
      await assert.rejects(
        async () => runner.run({ argv: ['touch', '/tmp/kumo-should-not-exist'], netns: bad }),
        /invalid netns name/,
      );
    }
    assert.deepEqual(fullArgv({ argv: ['ip', 'a'], netns: ns }), [
      'ip',
      'netns',
      'exec',
      ns,
      'ip',
      'a',
    ]);
  });
});
