/**
 * The end of an instance's ports, and of the instance: the ports it made are deleted,
 * the ones the user handed in are unbound, its volume attachments go (the volumes detach
 * on their storage hosts and stay), then the row is soft-deleted.
 *
 * Invariants: an instance's ports are released before its row is marked deleted, both
 * idempotent, so a crash between them leaves a row the next `deleted` report (or a
 * repeated DELETE) finishes; ports go through the same db functions and hints as the
 * ports API, so the L2, DHCP and L3 agents follow.
 */
import type { Db } from './db/index.ts';
import { deletePort, listPorts, updatePort } from './db/ports.ts';
import { markDeleted } from './db/server-tasks.ts';
import type { InstanceRecord } from './db/servers.ts';
import { type HintDeps, hintL3Agents, hintPort } from './hints.ts';
import { type Clock, systemClock } from './liveness.ts';
import { sgMembersChanged } from './sg-hints.ts';
import { detachServerVolumes } from './volume-reports.ts';

/** What the compute side of kumo-api needs: database, hints, log and (optionally) clock. */
export interface ComputeDeps extends HintDeps {
  db: Db;
  clock?: Clock;
}

export const nowOf = (deps: ComputeDeps) => (deps.clock ?? systemClock).now();

/** Deletes the ports an instance made, unbinds the ones the user handed in. */
export async function releasePorts(
  deps: ComputeDeps,
  inst: Pick<InstanceRecord, 'id' | 'keptPorts'>,
) {
  const ports = await listPorts(deps.db, { columns: { device_id: [inst.id] }, clauses: [] });
  const unbind = { device_id: '', device_owner: '', 'binding:host_id': '' };
  for (const p of ports) {
    let routers: string[] = [];
    try {
      if (inst.keptPorts.includes(p.id)) await updatePort(deps.db, p.id, unbind, nowOf(deps));
      else routers = await deletePort(deps.db, p.id);
    } catch (e) {
      // Deleted meanwhile (through the ports API or a concurrent release): already gone.
      if ((e as { type?: string }).type !== 'PortNotFound') throw e;
    }
    deps.log.info({ instanceId: inst.id, portId: p.id }, 'instance port released');
    await hintPort(deps, p);
    if (p.security_groups.length) void sgMembersChanged(deps, p.security_groups);
    // Its floating IPs were disassociated: their routers' L3 agents drop the NAT.
    for (const routerId of routers) await hintL3Agents(deps, routerId);
  }
}

/** The instance is gone from its host (or never reached one): ports, volumes, the row. */
export async function finishDelete(deps: ComputeDeps, inst: InstanceRecord) {
  await releasePorts(deps, inst);
  await detachServerVolumes(deps, inst.id);
  if (await markDeleted(deps.db, inst.id, nowOf(deps)))
    deps.log.info({ instanceId: inst.id, host: inst.host }, 'instance deleted');
}
