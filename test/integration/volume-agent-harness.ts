/**
 * What the volume agent's integration tests share: a tgtd of the test's own (a free
 * control port, a portal on 127.0.0.1 at a free port; killed with SIGKILL, as tgtd ignores
 * SIGTERM), and a fake kumo-api behind a broker passed in: get_host_volumes /
 * get_volume_info / get_snapshot_info answered from specs the test edits (an id in
 * `unlisted` is left out of get_host_volumes only), report_status
 * casts recorded, the agent's enqueued keys run by `drain`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { ResourceStatus } from '../../contracts/status.ts';
import { type SnapshotSpec, targetIqn, type VolumeSpec } from '../../contracts/volume.ts';
import type { AgentHooks } from '../../core/agent.ts';
import type { Broker } from '../../core/amqp.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { unusedControlPort } from '../../host/tgt/daemon.ts';
import { freePort, runCommand } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';

export interface TestTgtd {
  control: number;
  portal: number;
  tgtadm(args: string[]): ReturnType<typeof runCommand>;
  show(): Promise<string>;
  hasTarget(volumeId: string): Promise<boolean>;
  start(): Promise<void>;
  kill(): Promise<void>;
}

export async function testTgtd(): Promise<TestTgtd> {
  const control = await unusedControlPort(createCommandRunner());
  const portal = await freePort();
  let child: ChildProcess | undefined;
  const tgtadm = (args: string[]) =>
    runCommand(['tgtadm', '-C', String(control), '--lld', 'iscsi', ...args]);
  const show = async () => (await tgtadm(['--op', 'show', '--mode', 'target'])).stdout;
  const t: TestTgtd = {
    control,
    portal,
    tgtadm,
    show,
    hasTarget: async (id) => (await show()).includes(`: ${targetIqn(id)}\n`),
    async start() {
      const argv = ['-f', '-C', String(control), '--iscsi', `portal=127.0.0.1:${portal}`];
      child = spawn('tgtd', argv, { stdio: 'ignore' });
      await waitFor(
        'tgtd',
        async () => (await tgtadm(['--op', 'show', '--mode', 'sys'])).code === 0,
      );
    },
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
  };
  await t.start();
  return t;
}

export function fakeVolumeApi() {
  const volumes = new Map<string, VolumeSpec>();
  const snapshots = new Map<string, SnapshotSpec>();
  const statuses: ResourceStatus[] = [];
  const queued = new Set<string>();
  /** Ids get_host_volumes leaves out while get_volume_info / get_snapshot_info know them. */
  const unlisted = new Set<string>();
  const listed = (ids: Iterable<string>) => [...ids].filter((id) => !unlisted.has(id));
  const broker = {
    async call(_topic: string, method: string, args: { volume_id?: string; snapshot_id?: string }) {
      if (method === 'get_host_volumes')
        return { volumes: listed(volumes.keys()), snapshots: listed(snapshots.keys()) };
      if (method === 'get_volume_info')
        return { volume: structuredClone(volumes.get(args.volume_id ?? '') ?? null) };
      if (method === 'get_snapshot_info')
        return { snapshot: structuredClone(snapshots.get(args.snapshot_id ?? '') ?? null) };
      throw new Error(`unexpected call ${method}`);
    },
    async cast(_topic: string, method: string, args: { statuses?: ResourceStatus[] }) {
      if (method === 'report_status') statuses.push(...(args.statuses ?? []));
    },
  } as unknown as Broker;
  let hooks: AgentHooks | undefined;
  const agent = () => {
    if (!hooks) throw new Error('no agent attached');
    return hooks;
  };
  /** One reconcile as a hint makes it (a failure is reported; the queue would retry it). */
  const reconcile = (kind: 'volume' | 'snapshot', id: string) =>
    agent()
      .reconcile?.(kind, id)
      .catch(() => {});
  async function drain() {
    while (queued.size)
      for (const key of [...queued]) {
        queued.delete(key);
        const [kind, id] = key.split(':') as ['volume' | 'snapshot', string];
        await reconcile(kind, id);
      }
  }
  return {
    volumes,
    snapshots,
    unlisted,
    statuses,
    broker,
    reconcile,
    drain,
    async attach(h: AgentHooks) {
      hooks = h;
      await h.start?.({ enqueue: (resource, id) => void queued.add(`${resource}:${id}`) });
    },
    async resync() {
      await agent().resync('test');
      await drain();
    },
    last: (kind: string, id: string) =>
      statuses.filter((s) => s.resource === kind && s.id === id).at(-1),
  };
}
