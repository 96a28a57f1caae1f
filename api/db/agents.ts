/**
 * Agent rows: the queries behind the agent-management API and the state-report consumer.
 *
 * Invariants: rows are keyed by (agent_type, host); `alive` is never stored, it is computed
 * at read time from heartbeat_timestamp (stamped with the API's clock) and agent_down_time;
 * an agent body's `configurations` is what the agent reported plus, per resource kind it
 * failed to serve, `failed_<kind>s: {<id>: <reason>}` from agent_resource_status
 * (Neutron's agent body has no other free-form place for it).
 */
import { type Agent, agentTypeByKind } from '../../contracts/agents.ts';
import type { ResourceKind } from '../../contracts/status.ts';
import {
  type AgentIdentity,
  type Failures,
  failuresOf,
  forgetAgentStatuses,
} from './agent-status.ts';
import type { Db, Param, Queryable } from './index.ts';
import { bool } from './neutron.ts';

interface AgentRow {
  id: string;
  agent_type: string;
  binary: string;
  topic: string;
  host: string;
  availability_zone: string | null;
  admin_state_up: boolean | number;
  description: string | null;
  configurations: string;
  resource_versions: string;
  created_at: string;
  started_at: string;
  heartbeat_timestamp: string;
}

/** Neutron prints timestamps as `YYYY-MM-DD HH:MM:SS` (UTC). */
export function neutronTime(iso: string): string {
  return iso.slice(0, 19).replace('T', ' ');
}

export function isAlive(heartbeatIso: string, now: Date, agentDownTimeSec: number): boolean {
  return now.getTime() - Date.parse(heartbeatIso) <= agentDownTimeSec * 1000;
}

/** `configurations` key of a resource kind's failures: failed_networks, failed_routers … */
export const failedKey = (kind: ResourceKind) => `failed_${kind.endsWith('s') ? kind : `${kind}s`}`;

/** The agent's own configurations with its failures merged in (`failed_<kind>s`). */
function configurationsOf(row: AgentRow, failures: Failures | undefined) {
  const conf = JSON.parse(row.configurations) as Record<string, unknown>;
  for (const [kind, reasons] of failures ?? []) conf[failedKey(kind)] = reasons;
  return conf;
}

function toAgent(row: AgentRow, now: Date, downTime: number, failures?: Failures): Agent {
  return {
    id: row.id,
    agent_type: row.agent_type,
    binary: row.binary,
    topic: row.topic,
    host: row.host,
    admin_state_up: Boolean(row.admin_state_up),
    alive: isAlive(row.heartbeat_timestamp, now, downTime),
    availability_zone: row.availability_zone,
    description: row.description,
    configurations: configurationsOf(row, failures),
    resource_versions: JSON.parse(row.resource_versions) as Record<string, unknown>,
    resources_synced: null,
    created_at: neutronTime(row.created_at),
    started_at: neutronTime(row.started_at),
    heartbeat_timestamp: neutronTime(row.heartbeat_timestamp),
  };
}

/** Column filters the database can apply; each value list is OR-ed, columns AND-ed. */
export interface AgentFilter {
  id?: string[];
  agent_type?: string[];
  binary?: string[];
  topic?: string[];
  host?: string[];
  availability_zone?: string[];
  admin_state_up?: boolean[];
}

export async function listAgents(
  db: Queryable,
  filter: AgentFilter,
  now: Date,
  downTime: number,
): Promise<Agent[]> {
  const where: string[] = [];
  const params: Param[] = [];
  for (const [column, values] of Object.entries(filter) as [string, Param[] | undefined][]) {
    if (!values || values.length === 0) continue;
    where.push(`"${column}" IN (${values.map(() => '?').join(', ')})`);
    params.push(...values);
  }
  const sql = `SELECT * FROM agents${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY host, agent_type`;
  const rows = await db.query<AgentRow & Record<string, unknown>>(sql, params);
  const failures = await failuresOf(db, rows);
  return rows.map((r) => toAgent(r, now, downTime, failures.get(r.id)));
}

export async function getAgent(
  db: Queryable,
  id: string,
  now: Date,
  downTime: number,
): Promise<Agent | undefined> {
  const [row] = await db.query<AgentRow & Record<string, unknown>>(
    'SELECT * FROM agents WHERE id = ?',
    [id],
  );
  if (!row) return undefined;
  return toAgent(row, now, downTime, (await failuresOf(db, [row])).get(row.id));
}

export async function updateAgent(
  db: Queryable,
  id: string,
  changes: { admin_state_up?: boolean; description?: string | null },
): Promise<boolean> {
  const sets: string[] = [];
  const params: Param[] = [];
  if (changes.admin_state_up !== undefined) {
    sets.push('admin_state_up = ?');
    params.push(changes.admin_state_up);
  }
  if (changes.description !== undefined) {
    sets.push('description = ?');
    params.push(changes.description);
  }
  if (sets.length === 0)
    return (await db.query('SELECT id FROM agents WHERE id = ?', [id])).length > 0;
  const rows = await db.query(`UPDATE agents SET ${sets.join(', ')} WHERE id = ? RETURNING id`, [
    ...params,
    id,
  ]);
  return rows.length > 0;
}

export async function deleteAgent(db: Db, id: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [gone] = await tx.query<AgentIdentity>(
      'DELETE FROM agents WHERE id = ? RETURNING agent_type, host',
      [id],
    );
    if (gone) await forgetAgentStatuses(tx, gone);
    return gone !== undefined;
  });
}

/** What a scheduler reads of each agent of a type: host, admin state, heartbeat, config. */
export interface AgentSummary {
  host: string;
  adminStateUp: boolean;
  heartbeat: string;
  configurations: Record<string, unknown>;
}

export async function agentsOfType(db: Queryable, agentType: string): Promise<AgentSummary[]> {
  const rows = await db.query<{
    host: string;
    admin_state_up: unknown;
    heartbeat_timestamp: string;
    configurations: string;
  }>(
    'SELECT host, admin_state_up, heartbeat_timestamp, configurations FROM agents WHERE agent_type = ?',
    [agentType],
  );
  return rows.map((a) => ({
    host: a.host,
    adminStateUp: bool(a.admin_state_up),
    heartbeat: a.heartbeat_timestamp,
    configurations: JSON.parse(a.configurations) as Record<string, unknown>,
  }));
}

/** The heartbeat of the agent of `agentType` on `host`, or undefined when none. */
export async function heartbeatOf(
  db: Queryable,
  agentType: string,
  host: string,
): Promise<string | undefined> {
  const [row] = await db.query<{ heartbeat_timestamp: string }>(
    'SELECT heartbeat_timestamp FROM agents WHERE agent_type = ? AND host = ?',
    [agentType, host],
  );
  return row?.heartbeat_timestamp;
}

/** Nova's default availability zone: a host in no zone (or no host) is in it. */
export const DEFAULT_AZ = 'nova';

/** Each host's availability zone, its compute agent's (Nova's host aggregate zone), else
 * DEFAULT_AZ; one read for any number of servers. */
export async function computeZones(db: Queryable): Promise<(host: string) => string> {
  const rows = await db.query<{ host: string; availability_zone: string | null }>(
    'SELECT host, availability_zone FROM agents WHERE agent_type = ?',
    [agentTypeByKind('compute').agentType],
  );
  const zones = new Map(rows.map((r) => [r.host, r.availability_zone]));
  return (host) => zones.get(host) || DEFAULT_AZ;
}
