/**
 * What the volume agent's integration tests share: a tgtd of the test's own (a free
 * control port, a portal on 127.0.0.1 at a free port; killed with SIGKILL, as tgtd ignores
 * SIGTERM), and a fake kumo-api behind a broker passed in: get_host_volumes /
 * get_volume_info / get_snapshot_info answered from specs the test edits (an id in
 * `unlisted` is left out of get_host_volumes only), report_status
 * casts recorded, the agent's enqueued keys run by `drain`.
 */
import type { ResourceStatus } from '../../contracts/status.ts';
import { type SnapshotSpec, targetIqn, type VolumeSpec } from '../../contracts/volume.ts';
import type { AgentHooks } from '../../core/agent.ts';
import type { Broker } from '../../core/amqp.ts';
import type { runCommand } from '../helpers/cluster.ts';
import { startTgtd } from '../helpers/volume-lab-tgtd.ts';

export interface TestTgtd {
  control: number;
  portal: number;
  tgtadm(args: string[]): ReturnType<typeof runCommand>;
  show(): Promise<string>;
  hasTarget(volumeId: string): Promise<boolean>;
  start(): Promise<void>;
  kill(): Promise<void>;
  /** Kills it and removes its control socket files. */
  stop(): Promise<void>;
}

/** The volume lab's tgtd (test/helpers/volume-lab-tgtd.ts), as these tests name its parts. */
export async function testTgtd(dir: string): Promise<TestTgtd> {
  const d = await startTgtd(dir);
  const show = async () => (await d.tgtadm(['--op', 'show', '--mode', 'target'])).stdout;
  return {
    control: d.ctl,
    portal: d.port,
    tgtadm: d.tgtadm,
    show,
    hasTarget: async (id) => (await show()).includes(`: ${targetIqn(id)}\n`),
    start: d.start,
    kill: d.kill,
    stop: d.stop,
  };
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
