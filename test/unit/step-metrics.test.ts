/**
 * What agents/lib/steps.ts runSteps counts, with a FakeRunner for commands and a temporary
 * directory for file steps (our own executor logic; the tools have their own tests).
 *
 * Invariants under test: each step that succeeded is counted once under a bounded `tool`
 * label (a command's basename, ovsdb/file/mkdir/remove, a daemon's tool, an agent's own
 * kind); a failed step is not counted; iptables-restore runs and haproxy's `-sf` reloads are
 * counted, a `haproxy -c` check is not a reload; a dnsmasq SIGHUP is a reload, and so is a
 * start of a dnsmasq the same run stopped, but neither a first start nor a teardown.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import {
  type DaemonRef,
  runSteps,
  type Step,
  stepCounter,
  toolOf,
} from '../../agents/lib/steps.ts';
import { silentLogger } from '../../core/log.ts';
import { type StepMetrics, stepMetrics } from '../../core/metrics.ts';
import { tempDir } from '../helpers/env.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';
import { sampleOf } from '../helpers/metric-samples.ts';

const dir = tempDir('kumo-step-metrics-');
after(() => dir.cleanup());

const fresh = (): StepMetrics => stepMetrics(new Registry());
const cmd = (argv: string[], why = 'test'): Step => ({ kind: 'command', spec: { argv }, why });
const dnsmasq: DaemonRef = {
  pidfile: join(dir.path, 'net1', 'pid'),
  expected: `--pid-file=${join(dir.path, 'net1', 'pid')}`,
  tool: 'dnsmasq',
};

describe('runSteps counts steps by tool', () => {
  test('commands by basename, kit kinds by kind, iptables-restore runs and haproxy -sf reloads', async () => {
    const metrics = fresh();
    const runner = new FakeRunner().expect(
      { argv: ['ip', 'link', 'set', 'tap1', 'up'] },
      { argv: ['/usr/sbin/iptables-restore', '--noflush'] },
      { argv: ['ip6tables-restore', '--noflush'] },
      { argv: ['haproxy', '-c', '-f', '/x/haproxy.cfg'] },
      { argv: ['haproxy', '-f', '/x/haproxy.cfg', '-p', '/x/haproxy.pid', '-D', '-sf', '42'] },
    );
    const sub = join(dir.path, 'a');
    const steps: Step[] = [
      cmd(['ip', 'link', 'set', 'tap1', 'up']),
      cmd(['/usr/sbin/iptables-restore', '--noflush']),
      cmd(['ip6tables-restore', '--noflush']),
      cmd(['haproxy', '-c', '-f', '/x/haproxy.cfg']),
      cmd(['haproxy', '-f', '/x/haproxy.cfg', '-p', '/x/haproxy.pid', '-D', '-sf', '42']),
      { kind: 'mkdir', path: sub, why: 'dir' },
      { kind: 'file', path: join(sub, 'f'), content: 'x\n', why: 'file' },
      { kind: 'remove', path: sub, why: 'gone' },
      // No dnsmasq runs for this pid file: signalIfRunning sends nothing, the step succeeds.
      { kind: 'signal', daemon: dnsmasq, signal: 'SIGHUP', why: 'hosts changed' },
    ];
    await runSteps({ runner, log: silentLogger(), metrics }, steps);
    runner.verify();
    const applied = (tool: string) => sampleOf(metrics.applied, { tool });
    assert.equal(await applied('ip'), 1);
    assert.equal(await applied('iptables-restore'), 1);
    assert.equal(await applied('ip6tables-restore'), 1);
    assert.equal(await applied('haproxy'), 2);
    for (const kind of ['mkdir', 'file', 'remove']) assert.equal(await applied(kind), 1, kind);
    assert.equal(await applied('dnsmasq'), 1);
    assert.equal(await sampleOf(metrics.iptablesRestores), 2);
    assert.equal(await sampleOf(metrics.haproxyReloads), 1, 'haproxy -c is no reload');
    assert.equal(await sampleOf(metrics.dnsmasqReloads, { how: 'sighup' }), 1);
  });

  test("an agent's own step kinds count under their kind; a failed step is not counted", async () => {
    const metrics = fresh();
    const runner = new FakeRunner().expect({
      argv: ['iptables-restore', '--noflush'],
      fail: { exitCode: 1, stderr: 'line 3 failed' },
    });
    const own = { kind: 'plug-vifs', why: 'ports' };
    await runSteps({ runner, log: silentLogger(), metrics }, [own], {}, async () => {});
    await assert.rejects(
      runSteps({ runner, log: silentLogger(), metrics }, [cmd(['iptables-restore', '--noflush'])]),
    );
    assert.equal(await sampleOf(metrics.applied, { tool: 'plug-vifs' }), 1);
    assert.equal(await sampleOf(metrics.applied, { tool: 'iptables-restore' }), 0);
    assert.equal(await sampleOf(metrics.iptablesRestores), 0);
  });

  test('without metrics nothing is counted and nothing fails', async () => {
    const runner = new FakeRunner().expect({ argv: ['ip', 'netns', 'add', 'x'] });
    await runSteps({ runner, log: silentLogger() }, [cmd(['ip', 'netns', 'add', 'x'])]);
    runner.verify();
  });
});

describe('dnsmasq restarts and daemon tools (stepCounter, toolOf)', () => {
  const start: Step = {
    kind: 'daemon',
    action: 'start',
    daemon: dnsmasq,
    spec: { argv: ['/usr/sbin/dnsmasq', '--no-hosts'] },
    why: 'start',
  };
  const stop: Step = { kind: 'daemon', action: 'stop', daemon: dnsmasq, why: 'stop' };

  test('a stop then a start of the same dnsmasq is a restart; a first start or a stop alone is not', async () => {
    const metrics = fresh();
    const restart = stepCounter(metrics);
    restart(stop);
    restart(start);
    stepCounter(metrics)(start);
    stepCounter(metrics)(stop);
    assert.equal(await sampleOf(metrics.dnsmasqReloads, { how: 'restart' }), 1);
    assert.equal(await sampleOf(metrics.dnsmasqReloads, { how: 'sighup' }), 0);
    assert.equal(await sampleOf(metrics.applied, { tool: 'dnsmasq' }), 4);
  });

  test('the tool of daemon steps: the start argv basename; a stop or signal the ref tool, else daemon', () => {
    assert.equal(toolOf(start), 'dnsmasq');
    assert.equal(toolOf(stop), 'dnsmasq');
    const anon = { pidfile: '/x/pid', expected: '--pid-file=/x/pid' };
    assert.equal(toolOf({ kind: 'daemon', action: 'stop', daemon: anon, why: '' }), 'daemon');
    assert.equal(toolOf({ kind: 'signal', daemon: anon, signal: 'SIGHUP', why: '' }), 'daemon');
    assert.equal(toolOf({ kind: 'ovsdb', ops: [], applied: false, why: '' }), 'ovsdb');
  });
});
