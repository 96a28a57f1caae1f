/**
 * The DHCP agent's executor: runs a network's DhcpSteps in order, stopping at the
 * first failure (CommandError, or the process module's error) so a reconcile retries
 * with backoff from what the host then has.
 */
import { mkdir, rm } from 'node:fs/promises';
import type { CommandRunner } from '../../core/exec.ts';
import { dnsmasqIdentity, dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { writeDnsmasqFiles } from '../../host/dnsmasq/files.ts';
import { writeFileAtomic } from '../../host/fs/atomic.ts';
import { signalIfRunning, startDaemon, stopByPidfile } from '../../host/process/daemon.ts';
import { servedMarkerOf } from './desired.ts';
import type { DhcpStep } from './plan.ts';

async function dnsmasq(runner: CommandRunner, step: Extract<DhcpStep, { kind: 'dnsmasq' }>) {
  const paths = dnsmasqPaths(step.stateDir);
  const expected = dnsmasqIdentity(paths);
  if (step.action === 'stop' || step.action === 'restart') await stopByPidfile(paths.pid, expected);
  if (step.action === 'reload') await signalIfRunning(paths.pid, expected, 'SIGHUP');
  if (step.action === 'start' || step.action === 'restart') {
    await startDaemon(
      runner,
      { argv: step.argv, netns: step.netns },
      { pidfile: paths.pid, expected },
    );
  }
  if (step.digest) await writeFileAtomic(servedMarkerOf(paths.dir), `${step.digest}\n`);
}

export async function applyDhcp(runner: CommandRunner, steps: readonly DhcpStep[]): Promise<void> {
  for (const step of steps) {
    switch (step.kind) {
      case 'command':
        await runner.run(step.spec);
        break;
      case 'files':
        await writeDnsmasqFiles(step.stateDir, step.files);
        break;
      case 'dnsmasq':
        await dnsmasq(runner, step);
        break;
      case 'mkdir':
        await mkdir(step.dir, { recursive: true, mode: 0o755 });
        break;
      case 'rmdir':
        await rm(step.dir, { recursive: true, force: true });
        break;
    }
  }
}
