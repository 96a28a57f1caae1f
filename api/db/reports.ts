/**
 * Storing state reports: the write path behind agent liveness, built for thousands of
 * reports a second.
 *
 * Invariants: a batch is stored with a handful of statements whatever its size (one
 * lookup per agent type and hundred hosts, one multi-row upsert per chunk of agents that
 * started or did not: a start sets started_at in the same row write, so a starting agent
 * costs no second update); heartbeat_timestamp is the API's clock; each
 * report learns whether its agent was new, alive or dead before it, in arrival order. A
 * start (start_flag) leaves the agent's resource statuses alone: the agent reports every
 * resource it serves again, and a status may have been consumed before this report.
 */
import { randomUUID } from 'node:crypto';
import type { AgentState } from '../../contracts/agents.ts';
import { isAlive } from './agents.ts';
import { queryIn } from './chunks.ts';
import type { Param, Queryable } from './index.ts';

export interface StoredReport {
  /** What the agent was before this report: new, alive, or dead (revived by it). */
  previous: 'new' | 'alive' | 'dead';
  id: string;
}

type Previous = { id: string; heartbeat_timestamp: string };

const key = (s: { agent_type: string; host: string }) => `${s.agent_type}\n${s.host}`;
const LOOKUP_CHUNK = 100;
/** Upsert chunk sizes: few statement shapes for SQLite's statement cache. */
const UPSERT_CHUNKS = [64, 16, 4, 1];
const COLUMNS = `id, agent_type, "binary", topic, host, availability_zone, admin_state_up, description,
  configurations, resource_versions, created_at, started_at, heartbeat_timestamp`;
const ROW = '(?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)';
const ON_CONFLICT = `ON CONFLICT (agent_type, host) DO UPDATE SET
  "binary" = excluded."binary", topic = excluded.topic, availability_zone = excluded.availability_zone,
  configurations = excluded.configurations, resource_versions = excluded.resource_versions,
  heartbeat_timestamp = excluded.heartbeat_timestamp`;
/** An agent that reports start_flag: its started_at is this report's stamp too. */
const ON_CONFLICT_STARTED = `${ON_CONFLICT}, started_at = excluded.started_at`;

function groupHosts(states: readonly AgentState[]): Map<string, string[]> {
  const byType = new Map<string, Set<string>>();
  for (const s of states)
    byType.set(s.agent_type, (byType.get(s.agent_type) ?? new Set()).add(s.host));
  return new Map([...byType].map(([type, hosts]) => [type, [...hosts]]));
}

/** Chunks are padded to a fixed size so SQLite prepares one statement. */
async function previousRows(
  tx: Queryable,
  states: readonly AgentState[],
): Promise<Map<string, Previous>> {
  const found = new Map<string, Previous>();
  for (const [type, hosts] of groupHosts(states)) {
    const rows = await queryIn<Previous & { agent_type: string; host: string }>(
      tx,
      hosts,
      (list) => `SELECT id, agent_type, host, heartbeat_timestamp FROM agents
        WHERE agent_type = ? AND host IN ${list}`,
      [type],
      { chunk: LOOKUP_CHUNK, pad: true },
    );
    for (const r of rows) found.set(key(r), r);
  }
  return found;
}

function rowParams(id: string, s: AgentState, stamp: string): Param[] {
  const conf = JSON.stringify(s.configurations);
  const versions = JSON.stringify(s.resource_versions ?? {});
  return [
    id,
    s.agent_type,
    s.binary,
    s.topic,
    s.host,
    s.availability_zone ?? null,
    true,
    conf,
    versions,
    stamp,
    stamp,
    stamp,
  ];
}

/** The upsert of `size` rows, for agents that started or not: built once per shape. */
const UPSERT_SQL = new Map(
  UPSERT_CHUNKS.map((size) => {
    const head = `INSERT INTO agents (${COLUMNS}) VALUES ${Array(size).fill(ROW).join(', ')}`;
    return [size, { started: `${head} ${ON_CONFLICT_STARTED}`, other: `${head} ${ON_CONFLICT}` }];
  }),
);

async function upsert(tx: Queryable, rows: Param[][], started: boolean) {
  let i = 0;
  for (const size of UPSERT_CHUNKS) {
    const sql = UPSERT_SQL.get(size);
    if (!sql) continue;
    for (; rows.length - i >= size; i += size) {
      const params: Param[] = [];
      for (let r = i; r < i + size; r++) for (const p of rows[r] as Param[]) params.push(p);
      await tx.query(started ? sql.started : sql.other, params);
    }
  }
}

/**
 * Upserts a batch of state reports stamped `now`. An agent reporting twice in one batch
 * is written once, with its last report (and a start if either carried start_flag).
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
  const latest = new Map<string, { id: string; state: AgentState; started: boolean }>();
  const out = states.map((state): StoredReport => {
    const k = key(state);
    const old = known.get(k);
    const id = old?.id ?? randomUUID();
    const started = (latest.get(k)?.started ?? false) || state.start_flag === true;
    latest.set(k, { id, state, started });
    known.set(k, { id, heartbeat_timestamp: stamp });
    if (!old) return { previous: 'new', id };
    return { previous: isAlive(old.heartbeat_timestamp, now, downTime) ? 'alive' : 'dead', id };
  });
  const starts: Param[][] = [];
  const others: Param[][] = [];
  // Rows in one order on every replica, so two replicas' batches lock them alike.
  const ordered = [...latest.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [, u] of ordered) (u.started ? starts : others).push(rowParams(u.id, u.state, stamp));
  await upsert(tx, starts, true);
  await upsert(tx, others, false);
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
