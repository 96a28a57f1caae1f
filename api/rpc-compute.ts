/**
 * kumo-api ↔ kumo-compute-agent: the agent's q-plugin methods (get_instance,
 * get_host_instances, update_instance) and Nova's power sync. The hints the API casts to
 * `compute_agent.<host>` are in hints.ts, the end of an instance in instance-ports.ts.
 *
 * Invariants:
 * - a host is told only about instances handed over to it (host matches, not deleted,
 *   not still `scheduling`); for anything else get_instance answers `{instance: null}` so
 *   the agent removes what is left;
 * - a report is applied only from the instance's own host, and its power state only while
 *   the row's task_id is still the one the agent observed (reports are consumed
 *   concurrently: one overtaken by a newer task must not move the states back); a task
 *   ends only on its own task_id; with no task pending, the vm_state follows the power
 *   state as Nova's _sync_instance_power_state has it (`powerSync`);
 * - a spawn that fails leaves its host in the statement that ends it, ports after;
 * - an instance's NICs are the ports it was built with (port_order), never any port that
 *   merely names it as its device;
 * - an instance ends ports first, row second (instance-ports.ts);
 * - an instance's volume attachments, with their iSCSI connection (CHAP included), go
 *   only to its own host, once the storage host serves the ACL (api/db/volume-info.ts).
 */
import type { InstancePort, InstanceSpec } from '../contracts/instances.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import { POWER_STATE, VM_STATES, type VmState } from '../contracts/servers.ts';
import type { Db, Queryable } from './db/index.ts';
import { networkMtus } from './db/networks.ts';
import { resourceTime } from './db/neutron.ts';
import { listPorts } from './db/ports.ts';
import { finishTask, followPower, setPowerState } from './db/server-tasks.ts';
import {
  type Fault,
  getInstanceRow,
  hostInstanceIds,
  type InstanceRecord,
  inPortOrder,
} from './db/servers.ts';
import { instanceVolumes } from './db/volume-info.ts';
import { type ComputeDeps, finishDelete, nowOf, releasePorts } from './instance-ports.ts';

/** vm_states a finished task may lead to (deleted only through `deleted: true`). */
const TASK_RESULTS: readonly VmState[] = VM_STATES.filter(
  (s) => s !== 'building' && s !== 'deleted',
);

const handedTo = (inst: InstanceRecord | undefined, host: string) =>
  inst !== undefined &&
  inst.deletedAt === null &&
  inst.host === host &&
  inst.taskState !== 'scheduling';

/** An instance's ports as its agent plugs them: its own (port_order) in NIC order, with
 * their network's MTU; a port that merely names the instance as its device is no NIC. */
async function specPorts(tx: Queryable, inst: InstanceRecord): Promise<InstancePort[]> {
  if (inst.portOrder.length === 0) return [];
  const ports = inPortOrder(
    inst.portOrder,
    await listPorts(tx, { columns: { id: inst.portOrder, device_id: [inst.id] }, clauses: [] }),
  );
  const mtus = await networkMtus(
    tx,
    ports.map((p) => p.network_id),
  );
  return ports.map((p) => ({
    id: p.id,
    mac_address: p.mac_address,
    network_id: p.network_id,
    status: p.status,
    mtu: mtus.get(p.network_id) ?? 1500,
    fixed_ips: p.fixed_ips.map((ip) => ip.ip_address),
  }));
}

export async function getInstance(
  db: Db,
  args: ArgsOf<'get_instance'>,
): Promise<{ instance: InstanceSpec | null }> {
  // One transaction: the row and its ports as of one moment.
  return db.transaction(async (tx) => {
    const inst = await getInstanceRow(tx, args.instance_id);
    if (!inst || !handedTo(inst, args.host)) return { instance: null };
    return {
      instance: {
        id: inst.id,
        seq: inst.seq,
        display_name: inst.name,
        host: inst.host,
        vm_state: inst.vmState,
        task_state: inst.taskState,
        task_id: inst.taskId,
        flavor: { ...inst.flavor },
        ...inst.imageMeta,
        ports: await specPorts(tx, inst),
        created_at: inst.createdAt,
        config_drive: inst.configDrive,
        volumes: await instanceVolumes(tx, inst.id, inst.host),
      },
    };
  });
}

export async function getHostInstances(
  db: Db,
  args: ArgsOf<'get_host_instances'>,
): Promise<{ instances: string[] }> {
  return { instances: await hostInstanceIds(db, args.host) };
}

/* -------------------------------------------------------------- power sync */

const { NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED } = POWER_STATE;

/** What power sync does with a settled vm_state: move it, or leave it and say why. */
export type PowerSync = { to: VmState } | { ignored: string } | null;

/**
 * Nova's _sync_instance_power_state (no task pending): active and off, crashed or
 * suspended → stopped; paused and off or crashed → stopped; active and paused, or not
 * found, is left alone (external tools pause guests for a while); stopped yet running is
 * left alone too (Nova would force a stop; Kumo only says so). Everything else: no change.
 */
export function powerSync(vm: VmState, power: number): PowerSync {
  const off = power === SHUTDOWN || power === CRASHED;
  if (vm === 'active') {
    if (off || power === SUSPENDED) return { to: 'stopped' };
    if (power === PAUSED) return { ignored: 'instance is paused unexpectedly' };
    if (power === NOSTATE) return { ignored: 'instance is unexpectedly not found' };
    return null;
  }
  if (vm === 'paused' && off) return { to: 'stopped' };
  if (vm === 'stopped' && !off && power !== NOSTATE)
    return { ignored: power === RUNNING ? 'instance is not stopped' : 'instance is not off' };
  return null;
}

function faultOf(args: ArgsOf<'update_instance'>, now: Date): Fault {
  return {
    code: 500,
    message: args.fault?.message ?? 'The compute agent reported an error.',
    details: args.fault?.details ?? null,
    created: resourceTime(now),
  };
}

/** Ends the reported task if it is the current one; false when it is not. */
async function endTask(deps: ComputeDeps, inst: InstanceRecord, args: ArgsOf<'update_instance'>) {
  const wanted = args.vm_state;
  const vm = wanted && TASK_RESULTS.includes(wanted) ? wanted : inst.vmState;
  const now = nowOf(deps);
  const fault = vm === 'error' ? faultOf(args, now) : null;
  const result = { vmState: vm, fault, timings: args.timings ?? null };
  const ended = await finishTask(deps.db, inst.id, args.task_done as number, result, now);
  const log = { instanceId: inst.id, taskId: args.task_done, task: inst.taskState, vmState: vm };
  if (!ended) {
    deps.log.info({ ...log, current: inst.taskId }, 'report of a task no longer current');
    return false;
  }
  if (vm === 'error' && ended.host === '') {
    // Nova's build failure: the host went with the task; the networks are deallocated.
    await releasePorts(deps, inst);
    deps.log.info(log, 'spawn failed: host and ports released');
  } else deps.log.info(log, 'instance task done');
  return true;
}

/** Power sync for a report that ended no task (see `powerSync`). */
async function syncPower(deps: ComputeDeps, inst: InstanceRecord, args: ArgsOf<'update_instance'>) {
  if (inst.taskState !== null) return;
  const sync = powerSync(inst.vmState, args.power_state);
  const ctx = { instanceId: inst.id, vmState: inst.vmState, power: args.power_state };
  if (sync === null) return;
  if ('ignored' in sync) return deps.log.warn(ctx, `power sync: ${sync.ignored}; ignored`);
  const change = { from: inst.vmState, to: sync.to, observed: args.observed_task_id };
  if (await followPower(deps.db, inst.id, change, nowOf(deps)))
    deps.log.info({ ...ctx, to: sync.to }, 'power sync: vm_state follows the power state');
}

/** The agent's report (a cast): see the module invariants. */
export async function updateInstance(deps: ComputeDeps, args: ArgsOf<'update_instance'>) {
  const inst = await getInstanceRow(deps.db, args.instance_id);
  const ctx = { instanceId: args.instance_id, host: args.host };
  if (!inst) return deps.log.warn(ctx, 'report about an unknown instance ignored');
  if (inst.host !== args.host)
    return deps.log.warn({ ...ctx, owner: inst.host }, 'report from another host ignored');
  if (inst.deletedAt !== null) {
    if (args.deleted) await releasePorts(deps, inst);
    return;
  }
  const observed = args.observed_task_id;
  await setPowerState(deps.db, inst.id, args.power_state, observed, nowOf(deps));
  if (args.deleted) {
    if (inst.taskState === 'deleting') return finishDelete(deps, inst);
    return deps.log.warn({ ...ctx, task: inst.taskState }, 'deleted report without a delete');
  }
  if (args.task_done !== undefined && (await endTask(deps, inst, args))) return;
  if (observed !== undefined && observed !== inst.taskId)
    return deps.log.info({ ...ctx, observed, current: inst.taskId }, 'report overtaken');
  await syncPower(deps, inst, args);
}
