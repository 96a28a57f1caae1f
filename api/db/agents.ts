/**
 * Agent rows: the queries behind the agent-management API and the state-report consumer.
 *
 * Invariant: rows are keyed by (agent_type, host); `alive` is never stored, it is computed
 * at read time from heartbeat_timestamp (stamped with the API's clock) and agent_down_time.
 */
import { randomUUID } from 'node:crypto';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import type { Param, Queryable } from './index.ts';

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

function toAgent(row: AgentRow, now: Date, downTime: number): Agent {
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
    configurations: JSON.parse(row.configurations) as Record<string, unknown>,
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
  return rows.map((r) => toAgent(r, now, downTime));
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
  return row ? toAgent(row, now, downTime) : undefined;
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

export async function deleteAgent(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('DELETE FROM agents WHERE id = ? RETURNING id', [id])).length > 0;
}

export interface StoredReport {
  /** What the agent was before this report: new, alive, or dead (revived by it). */
  previous: 'new' | 'alive' | 'dead';
  id: string;
}

type Previous = { id: string; heartbeat_timestamp: string };

const LOOKUP_CHUNK = 100;
const LOOKUP_SQL = `SELECT id, agent_type, host, heartbeat_timestamp FROM agents
  WHERE agent_type = ? AND host IN (${Array(LOOKUP_CHUNK).fill('?').join(', ')})`;

/**
 * The rows a batch of reports will update: per agent type, a hundred hosts per query (the
 * (agent_type, host) unique index serves it). Chunks are padded to a fixed size so
 * SQLite prepares one statement, not one per batch size.
 */
async function previousRows(
  tx: Queryable,
  states: readonly AgentState[],
): Promise<Map<string, Previous>> {
  const byType = new Map<string, Set<string>>();
  for (const s of states)
    byType.set(s.agent_type, (byType.get(s.agent_type) ?? new Set()).add(s.host));
  const found = new Map<string, Previous>();
  for (const [type, hostSet] of byType) {
    const hosts = [...hostSet];
    for (let i = 0; i < hosts.length; i += LOOKUP_CHUNK) {
      const chunk = hosts.slice(i, i + LOOKUP_CHUNK);
      const padded = [
        ...chunk,
        ...Array<string>(LOOKUP_CHUNK - chunk.length).fill(chunk[0] as string),
      ];
      const rows = await tx.query<Previous & { agent_type: string; host: string }>(LOOKUP_SQL, [
        type,
        ...padded,
      ]);
      for (const r of rows) found.set(`${r.agent_type}\n${r.host}`, r);
    }
  }
  return found;
}

/**
 * Upserts a batch of state reports stamped `now`, in order; tells for each whether the
 * agent had been new, alive or dead before it. One SELECT serves the whole batch.
 */
export async function storeReports(
  tx: Queryable,
  states: readonly AgentState[],
  now: Date,
  downTime: number,
): Promise<StoredReport[]> {
  if (states.length === 0) return [];
  const known = await previousRows(tx, states);
  const stamp = now.toISOString();
  const out: StoredReport[] = [];
  for (const state of states) {
    const key = `${state.agent_type}\n${state.host}`;
    const old = known.get(key);
    const id = old?.id ?? randomUUID();
    await tx.query(
      `INSERT INTO agents (id, agent_type, "binary", topic, host, availability_zone, admin_state_up,
         description, configurations, resource_versions, created_at, started_at, heartbeat_timestamp)
       VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)
       ON CONFLICT (agent_type, host) DO UPDATE SET
         "binary" = excluded."binary", topic = excluded.topic,
         availability_zone = excluded.availability_zone, configurations = excluded.configurations,
         resource_versions = excluded.resource_versions,
         heartbeat_timestamp = excluded.heartbeat_timestamp,
         started_at = CASE WHEN ? THEN excluded.started_at ELSE agents.started_at END`,
      [
        id,
        state.agent_type,
        state.binary,
        state.topic,
        state.host,
        state.availability_zone ?? null,
        true,
        JSON.stringify(state.configurations),
        JSON.stringify(state.resource_versions ?? {}),
        stamp,
        stamp,
        stamp,
        state.start_flag === true,
      ],
    );
    known.set(key, { id, heartbeat_timestamp: stamp });
    const previous = !old
      ? 'new'
      : isAlive(old.heartbeat_timestamp, now, downTime)
        ? 'alive'
        : 'dead';
    out.push({ previous, id });
  }
  return out;
}

/** One report; see storeReports. */
export async function storeReport(
  tx: Queryable,
  state: AgentState,
  now: Date,
  downTime: number,
): Promise<StoredReport> {
  return (await storeReports(tx, [state], now, downTime))[0] as StoredReport;
}
