/**
 * The agent_resource_status table: the last status an agent reported for each resource
 * it serves (contracts/status.ts `report_status`), kept only while it is ERROR.
 *
 * Invariants: a row exists exactly while the agent's last report for (resource, id) was
 * ERROR — ERROR upserts it, ACTIVE deletes it, in the order the report lists them. A part
 * a resource was served without (a port of a network, `rejected`) has a row naming its
 * parent while the parent's last status lists it: each status of the parent replaces
 * its parts' rows, so a part served again, or gone, leaves with the next report. Rows
 * are keyed by the agent's identity (agent_type, host), not its row, so a report consumed
 * before the agent's registration is kept; a starting agent forgets what it sent and
 * reports every resource it serves again, which clears what is served now. Rows go with
 * the agent's deletion and with the resource's.
 */
import type { ResourceKind, ResourceStatus } from '../../contracts/status.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable } from './index.ts';

export type AgentIdentity = {
  agent_type: string;
  host: string;
};

const KEY = 'agent_type = ? AND host = ? AND resource = ? AND resource_id = ?';
const PARENT = 'agent_type = ? AND host = ? AND parent_resource = ? AND parent_id = ?';

async function upsert(
  tx: Queryable,
  key: string[],
  reason: string | null,
  parent: [string, string] | [null, null],
  at: string,
) {
  await tx.query(
    `INSERT INTO agent_resource_status
       (agent_type, host, resource, resource_id, status, reason, updated_at,
        parent_resource, parent_id)
     VALUES (?, ?, ?, ?, 'ERROR', ?, ?, ?, ?)
     ON CONFLICT (agent_type, host, resource, resource_id) DO UPDATE SET
       status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at,
       parent_resource = excluded.parent_resource, parent_id = excluded.parent_id`,
    [...key, reason, at, ...parent],
  );
}

/** A status replaces the resource's own row and all rows of the parts it left out. */
async function applyOne(tx: Queryable, who: AgentIdentity, s: ResourceStatus, at: string) {
  const key = [who.agent_type, who.host, s.resource, s.id];
  await tx.query(`DELETE FROM agent_resource_status WHERE ${PARENT}`, key);
  if (s.status === 'ACTIVE') await tx.query(`DELETE FROM agent_resource_status WHERE ${KEY}`, key);
  else await upsert(tx, key, s.reason ?? null, [null, null], at);
  for (const part of s.rejected ?? []) {
    const partKey = [who.agent_type, who.host, part.resource, part.id];
    await upsert(tx, partKey, part.reason, [s.resource, s.id], at);
  }
}

/** Applies one report's changes, in order, in one transaction. */
export async function applyStatuses(
  db: Db,
  who: AgentIdentity,
  statuses: readonly ResourceStatus[],
  now: Date,
): Promise<void> {
  const at = now.toISOString();
  await db.transaction(async (tx) => {
    for (const s of statuses) await applyOne(tx, who, s, at);
  });
}

/** Forgets an agent's statuses (the agent row is being deleted). */
export async function forgetAgentStatuses(tx: Queryable, who: AgentIdentity): Promise<void> {
  await tx.query('DELETE FROM agent_resource_status WHERE agent_type = ? AND host = ?', [
    who.agent_type,
    who.host,
  ]);
}

/** Forgets every agent's status of a resource and of its parts (it is being deleted). */
export async function forgetResourceStatuses(tx: Queryable, resource: ResourceKind, id: string) {
  await tx.query(
    `DELETE FROM agent_resource_status
     WHERE (resource = ? AND resource_id = ?) OR (parent_resource = ? AND parent_id = ?)`,
    [resource, id, resource, id],
  );
}

/** resource id → reason, per resource kind. */
export type Failures = Map<ResourceKind, Record<string, string>>;

const identityKey = (who: AgentIdentity) => `${who.agent_type}\n${who.host}`;

/** The ERROR rows of `agents`: `identityKey` → its failures (agents without any absent). */
async function failuresByIdentity(
  db: Queryable,
  agents: readonly AgentIdentity[],
): Promise<Map<string, Failures>> {
  const hosts = [...new Set(agents.map((a) => a.host))];
  const rows = await queryIn<
    AgentIdentity & { resource: ResourceKind; resource_id: string; reason: string | null }
  >(
    db,
    hosts,
    (list) => `SELECT agent_type, host, resource, resource_id, reason FROM agent_resource_status
      WHERE status = 'ERROR' AND host IN ${list} ORDER BY resource, resource_id`,
  );
  const out = new Map<string, Failures>();
  for (const r of rows) {
    const mine = out.get(identityKey(r)) ?? new Map<ResourceKind, Record<string, string>>();
    out.set(identityKey(r), mine);
    const kind = mine.get(r.resource) ?? {};
    mine.set(r.resource, kind);
    kind[r.resource_id] = r.reason ?? '';
  }
  return out;
}

/** The failures of each agent row, by its id (agents without any are absent). */
export async function failuresOf(
  db: Queryable,
  agents: readonly (AgentIdentity & { id: string })[],
): Promise<Map<string, Failures>> {
  const byIdentity = await failuresByIdentity(db, agents);
  const out = new Map<string, Failures>();
  for (const a of agents) {
    const f = byIdentity.get(identityKey(a));
    if (f) out.set(a.id, f);
  }
  return out;
}
