/**
 * The agent_resource_status table: the last status an agent reported for each resource
 * it serves (contracts/status.ts `report_status`), kept only while it is ERROR.
 *
 * Invariants: a row exists exactly while the agent's last report for (resource, id) was
 * ERROR — ERROR upserts it, ACTIVE deletes it, in the order the report lists them; an
 * agent's rows go when it starts (it forgets what it sent and reports again) and with its
 * agent row (ON DELETE CASCADE).
 */
import type { ResourceKind, ResourceStatus } from '../../contracts/status.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable } from './index.ts';

/** The id of the agent of `agentType` on `host`, or undefined when it is not registered. */
export async function agentIdOf(
  db: Queryable,
  agentType: string,
  host: string,
): Promise<string | undefined> {
  const [row] = await db.query<{ id: string }>(
    'SELECT id FROM agents WHERE agent_type = ? AND host = ?',
    [agentType, host],
  );
  return row?.id;
}

async function applyOne(tx: Queryable, agentId: string, s: ResourceStatus, at: string) {
  if (s.status === 'ACTIVE') {
    await tx.query(
      'DELETE FROM agent_resource_status WHERE agent_id = ? AND resource = ? AND resource_id = ?',
      [agentId, s.resource, s.id],
    );
    return;
  }
  await tx.query(
    `INSERT INTO agent_resource_status (agent_id, resource, resource_id, status, reason, updated_at)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (agent_id, resource, resource_id) DO UPDATE SET
       status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at`,
    [agentId, s.resource, s.id, s.status, s.reason ?? null, at],
  );
}

/** Applies one report's changes, in order, in one transaction. */
export async function applyStatuses(
  db: Db,
  agentId: string,
  statuses: readonly ResourceStatus[],
  now: Date,
): Promise<void> {
  const at = now.toISOString();
  await db.transaction(async (tx) => {
    for (const s of statuses) await applyOne(tx, agentId, s, at);
  });
}

/** Forgets the statuses of the agents of `agentType` on `hosts` (they just started). */
export async function forgetStatuses(tx: Queryable, agentType: string, hosts: readonly string[]) {
  await queryIn(
    tx,
    hosts,
    (list) => `DELETE FROM agent_resource_status WHERE agent_id IN
      (SELECT id FROM agents WHERE agent_type = ? AND host IN ${list})`,
    [agentType],
  );
}

/** resource id → reason, per resource kind. */
export type Failures = Map<ResourceKind, Record<string, string>>;

/** The ERROR rows of `agentIds`: agent id → its failures (agents without any are absent). */
export async function failuresOf(
  db: Queryable,
  agentIds: readonly string[],
): Promise<Map<string, Failures>> {
  const rows = await queryIn<{
    agent_id: string;
    resource: ResourceKind;
    resource_id: string;
    reason: string | null;
  }>(
    db,
    agentIds,
    (list) => `SELECT agent_id, resource, resource_id, reason FROM agent_resource_status
      WHERE status = 'ERROR' AND agent_id IN ${list} ORDER BY resource, resource_id`,
  );
  const out = new Map<string, Failures>();
  for (const r of rows) {
    const mine = out.get(r.agent_id) ?? new Map<ResourceKind, Record<string, string>>();
    out.set(r.agent_id, mine);
    const kind = mine.get(r.resource) ?? {};
    mine.set(r.resource, kind);
    kind[r.resource_id] = r.reason ?? '';
  }
  return out;
}
