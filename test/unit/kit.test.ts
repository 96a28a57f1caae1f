/**
 * The agent kit's own logic: core/reconciler.ts (the fetch → desired → observe → plan →
 * apply → report cycle, hint revisions, error classes), core/status.ts (send on change
 * only), agents/lib/steps.ts (the executor, on real files in a temp dir) and the
 * FakeRunner the agent tests use.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { resourceStatus } from '../../agents/lib/status.ts';
import { runSteps, type Step } from '../../agents/lib/steps.ts';
import { PermanentError, TransientError } from '../../contracts/errors.ts';
import { ReportStatusArgs } from '../../contracts/status.ts';
import { CommandError } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { type AnyKindSpec, createReconciler } from '../../core/reconciler.ts';
import { createStatusReporter, type StatusChange } from '../../core/status.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

type Status = { status: 'ACTIVE' | 'ERROR'; reason?: string };

function recordingReporter() {
  const sent: StatusChange<Status>[][] = [];
  let failNext = false;
  const reporter = createStatusReporter<Status>({
    send: async (changes) => {
      if (failNext) {
        failNext = false;
        throw new Error('broker away');
      }
      sent.push(changes);
    },
  });
  return { reporter, sent, failOnce: () => (failNext = true) };
}

/** A kind whose host is a Set of applied values; `fetch` answers from `api`. */
function setKind(
  api: Map<string, { value: string; revision: number }>,
  failWith?: () => Error | undefined,
) {
  const host = new Set<string>();
  const applied: string[][] = [];
  const status = recordingReporter();
  const spec: AnyKindSpec = {
    fetch: async (id) => api.get(id) ?? null,
    desired: (f) => (f ? f.value : null),
    observe: async (_id, d) => (d ? host.has(d) : true),
    plan: (d, present) => (present ? [] : [{ why: `add ${d}`, value: d }]),
    apply: async (steps) => {
      const err = failWith?.();
      if (err) throw err;
      applied.push(steps.map((s) => s.why));
      for (const s of steps) host.add((s as unknown as { value: string }).value);
    },
    revisionOf: (f) => f?.revision,
    status: {
      reporter: status.reporter,
      ok: () => ({ status: 'ACTIVE' }),
      failed: (e) => ({ status: 'ERROR', reason: e.message }),
    },
  };
  return { spec, host, applied, sent: status.sent, failOnce: status.failOnce };
}

describe('reconciler', () => {
  test('plans from what it observed, applies once, reports ACTIVE once', async () => {
    const api = new Map([['a', { value: 'x', revision: 3 }]]);
    const k = setKind(api);
    const r = createReconciler({ log: silentLogger(), kinds: { network: k.spec } });
    await r.reconcile('network', 'a');
    await r.reconcile('network', 'a');
    assert.deepEqual(k.applied, [['add x'], []]);
    assert.deepEqual(k.sent, [[{ key: 'network:a', value: { status: 'ACTIVE' } }]]);
  });

  test('a hint whose revision was applied is skipped; a newer one or none runs', async () => {
    const api = new Map([['a', { value: 'x', revision: 3 }]]);
    const k = setKind(api);
    const r = createReconciler({ log: silentLogger(), kinds: { network: k.spec } });
    await r.reconcile('network', 'a', 3);
    api.set('a', { value: 'y', revision: 4 });
    await r.reconcile('network', 'a', 3);
    assert.deepEqual([...k.host], ['x'], 'revision 3 was done: skipped');
    await r.reconcile('network', 'a', 4);
    assert.deepEqual([...k.host], ['x', 'y']);
    api.set('a', { value: 'z', revision: 4 });
    await r.reconcile('network', 'a');
    assert.ok(k.host.has('z'), 'a reconcile without revision always runs');
    r.forget();
    api.set('a', { value: 'w', revision: 4 });
    await r.reconcile('network', 'a', 4);
    assert.ok(k.host.has('w'), 'after forget() revisions are checked again');
  });

  test('TransientError is rethrown and changes no status', async () => {
    const k = setKind(
      new Map([['a', { value: 'x', revision: 1 }]]),
      () => new TransientError('api away'),
    );
    const r = createReconciler({ log: silentLogger(), kinds: { network: k.spec } });
    await assert.rejects(r.reconcile('network', 'a'), TransientError);
    assert.deepEqual(k.sent, []);
  });

  test('PermanentError reports ERROR with the reason and is not rethrown', async () => {
    const k = setKind(
      new Map([['a', { value: 'x', revision: 1 }]]),
      () => new PermanentError('bad image'),
    );
    const r = createReconciler({ log: silentLogger(), kinds: { network: k.spec } });
    await r.reconcile('network', 'a');
    assert.deepEqual(k.sent, [
      [{ key: 'network:a', value: { status: 'ERROR', reason: 'bad image' } }],
    ]);
  });

  test('any other error reports ERROR and is rethrown for a retry; recovery reports ACTIVE', async () => {
    let failing = true;
    const boom = () =>
      failing
        ? new CommandError(
            { argv: ['dnsmasq'] },
            { exitCode: 2, signal: null, stderr: 'Address in use', timedOut: false },
          )
        : undefined;
    const k = setKind(new Map([['a', { value: 'x', revision: 1 }]]), boom);
    const r = createReconciler({ log: silentLogger(), kinds: { network: k.spec } });
    await assert.rejects(r.reconcile('network', 'a'), CommandError);
    await assert.rejects(r.reconcile('network', 'a'), CommandError);
    failing = false;
    await r.reconcile('network', 'a');
    assert.equal(k.sent.length, 2, 'the repeated ERROR is not sent twice');
    assert.match(String(k.sent[0]?.[0]?.value.reason), /dnsmasq exited 2: Address in use/);
    assert.deepEqual(k.sent[1], [{ key: 'network:a', value: { status: 'ACTIVE' } }]);
  });

  test('an unknown kind is a PermanentError naming it', async () => {
    const r = createReconciler({ log: silentLogger(), kinds: {} });
    await assert.rejects(r.reconcile('router', 'a'), /does not manage router resources/);
  });
});

describe('status reporter', () => {
  test('sends only changes, in one batch; equal fresh objects are no change', async () => {
    const { reporter, sent } = recordingReporter();
    reporter.set('a', { status: 'ACTIVE' });
    reporter.set('b', { status: 'ERROR', reason: 'x' });
    await reporter.flush();
    reporter.set('a', { status: 'ACTIVE' });
    await reporter.flush();
    reporter.set('b', { status: 'ACTIVE' });
    await reporter.flush();
    assert.deepEqual(sent, [
      [
        { key: 'a', value: { status: 'ACTIVE' } },
        { key: 'b', value: { status: 'ERROR', reason: 'x' } },
      ],
      [{ key: 'b', value: { status: 'ACTIVE' } }],
    ]);
    assert.deepEqual(reporter.sentKeys().sort(), ['a', 'b']);
  });

  test('a failed send is retried by the next flush; forget() re-sends everything', async () => {
    const { reporter, sent, failOnce } = recordingReporter();
    reporter.set('a', { status: 'ACTIVE' });
    failOnce();
    await assert.rejects(reporter.flush(), /broker away/);
    assert.equal(reporter.sent('a'), undefined);
    await reporter.flush();
    assert.deepEqual(sent, [[{ key: 'a', value: { status: 'ACTIVE' } }]]);
    reporter.forget();
    await reporter.flush();
    assert.equal(sent.length, 2);
    reporter.drop('a');
    reporter.forget();
    await reporter.flush();
    assert.equal(sent.length, 2, 'a dropped key is not sent');
  });
});

test('status reporter: a drop or forget during a send wins over that send', async () => {
  let release: () => void = () => {};
  const sent: StatusChange<string>[][] = [];
  const reporter = createStatusReporter<string>({
    send: (changes) => {
      sent.push(changes);
      return new Promise<void>((r) => {
        release = r;
      });
    },
  });
  reporter.set('port:a', 'up');
  reporter.set('port:b', 'up');
  const first = reporter.flush();
  await new Promise((r) => setImmediate(r));
  reporter.drop('port:a');
  release();
  await first;
  assert.equal(reporter.sent('port:a'), undefined, 'the dropped key is not marked sent');
  assert.equal(reporter.sent('port:b'), 'up');
  reporter.set('port:a', 'up');
  const second = reporter.flush();
  await new Promise((r) => setImmediate(r));
  reporter.forget();
  release();
  await second;
  assert.deepEqual(reporter.sentKeys(), [], 'a resync during the send: nothing counts as sent');
  const third = reporter.flush();
  await new Promise((r) => setImmediate(r));
  release();
  await third;
  assert.deepEqual(
    sent.map((c) => c.map((x) => x.key)),
    [['port:a', 'port:b'], ['port:a'], ['port:b', 'port:a']],
  );
});

test('a failure reason is one line that report_status accepts, whatever stderr holds', () => {
  const failed = new CommandError(
    { argv: ['dnsmasq', '--conf-file=/x'], netns: 'qdhcp-x' },
    {
      exitCode: 2,
      signal: null,
      stderr: 'first\r\n\tsocket: Address in use\u0007\n',
      timedOut: false,
    },
  );
  const statuses = [
    resourceStatus('network', 'n1', failed),
    resourceStatus('network', 'n2', new Error('libvirt said:\nno\tway')),
    resourceStatus('network', 'n3'),
  ];
  const args = ReportStatusArgs.parse({ host: 'h1', agent_type: 'DHCP agent', statuses }, 'args');
  assert.equal(args.statuses.length, 3);
  assert.match(
    String(statuses[0]?.reason),
    /^dnsmasq in qdhcp-x exited 2: first .*Address in use$/,
  );
  assert.equal(statuses[1]?.reason, 'libvirt said: no way');
  assert.equal(statuses[2]?.status, 'ACTIVE');
});

describe('runSteps', () => {
  test('runs kit and agent steps in order, stops at the first failure with its error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kumo-kit-'));
    try {
      const runner = new FakeRunner().expect(
        { argv: ['ip', 'netns', 'add', 'qdhcp-x'] },
        {
          argv: ['ip', 'link', 'set', 'lo', 'up'],
          netns: 'qdhcp-x',
          fail: { exitCode: 1, stderr: 'no lo' },
        },
      );
      const seen: string[] = [];
      const steps: (Step | { kind: 'note'; why: string })[] = [
        { kind: 'mkdir', path: join(dir, 'state'), why: 'state directory' },
        { kind: 'file', path: join(dir, 'state', 'f'), content: 'hello\n', why: 'a file' },
        { kind: 'note', why: 'agent step' },
        { kind: 'command', spec: { argv: ['ip', 'netns', 'add', 'qdhcp-x'] }, why: 'namespace' },
        {
          kind: 'command',
          spec: { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: 'qdhcp-x' },
          why: 'lo',
        },
        { kind: 'remove', path: join(dir, 'state'), why: 'never reached' },
      ];
      await assert.rejects(
        runSteps({ runner, log: silentLogger() }, steps, {}, async (s) => {
          seen.push(s.why);
        }),
        (e: CommandError) => e instanceof CommandError && e.stderr === 'no lo',
      );
      runner.verify();
      assert.deepEqual(seen, ['agent step']);
      assert.equal(await readFile(join(dir, 'state', 'f'), 'utf8'), 'hello\n');
      await runSteps({ runner, log: silentLogger() }, [
        { kind: 'remove', path: join(dir, 'state'), why: 'x' },
      ]);
      await assert.rejects(stat(join(dir, 'state')), /ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an agent step without a handler and an ovsdb step without a connection are refused', async () => {
    const deps = { runner: new FakeRunner(), log: silentLogger() };
    await assert.rejects(runSteps(deps, [{ kind: 'note', why: 'x' }]), /no handler for note steps/);
    await assert.rejects(
      runSteps(deps, [{ kind: 'ovsdb', ops: [], applied: true, why: 'x' }]),
      /no OVSDB connection/,
    );
  });
});

describe('FakeRunner', () => {
  test('an unexpected command throws naming both; an unused expectation fails verify()', async () => {
    const runner = new FakeRunner().expect({ argv: ['a'] }, { argv: ['b'], stdout: 'B' });
    await runner.run({ argv: ['a'] });
    await assert.rejects(runner.run({ argv: ['c'] }), /unexpected command c; expected b/);
    const again = new FakeRunner().expect({ argv: ['a'] });
    assert.throws(() => again.verify(), /never ran/);
    assert.equal((await again.run({ argv: ['a'] })).stdout, '');
    again.verify();
    await assert.rejects(again.run({ argv: ['a'] }), /none expected/);
  });
});
