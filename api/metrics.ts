/**
 * kumo-api's own metrics, beside the broker's (core/metrics.ts): agents alive and dead by
 * type, heartbeat lag, HTTP request durations by route pattern, and q-plugin RPC handling
 * durations; all in the registry the daemon made and passes in.
 *
 * Invariants:
 * - `kumo_agents` is counted from the agents table (at most once per AGENT_COUNT_TTL_MS)
 *   and judged alive exactly as the API judges it (db/agents.ts isAlive, with
 *   agent_down_time and the API's clock);
 *   every known agent type has both states, 0 when none; a database that fails the read
 *   leaves the gauge empty for that scrape (logged) and never fails the other metrics;
 * - the HTTP `route` label is the matched route's pattern (`/v2.0/networks/:id`), or
 *   `unmatched` when no route matched: never the raw URL, so its values stay bounded;
 * - heartbeat lag is the API's receive time minus the report's `time`, never negative.
 */
import type { FastifyInstance } from 'fastify';
import { Gauge, Histogram, type Registry } from 'prom-client';
import { AGENT_TYPE_NAMES } from '../contracts/agents.ts';
import type { Message } from '../contracts/messages.ts';
import type { Logger } from '../core/log.ts';
import { type AmqpMetrics, amqpMetrics, createRegistry } from '../core/metrics.ts';
import type { Queryable } from './db/index.ts';

/** Where `kumo_agents` reads from. */
export interface AgentSource {
  db: Queryable;
  clock: { now(): Date };
  /** [DEFAULT] agent_down_time, seconds. */
  agentDownTime: number;
  log: Logger;
}

export interface ApiMetrics {
  heartbeatLag: Histogram<'agent_type'>;
  httpDuration: Histogram<'method' | 'route' | 'code'>;
  rpcHandleDuration: Histogram<'method' | 'outcome'>;
}

/** Everything kumo-api counts, in its own registry. */
export interface ApiDaemonMetrics {
  registry: Registry;
  amqp: AmqpMetrics;
  api: ApiMetrics;
}

/** How long one count of the agents table serves scrapes (it scans the whole table). */
export const AGENT_COUNT_TTL_MS = 10_000;

type AgentCount = { agent_type: string; alive: number | boolean; n: number | string };

/**
 * The agents table as {agent_type, state} counts, counted by the database (a scrape must
 * not pull every row of a 100,000-agent table through the event loop that ingests their
 * heartbeats) and at most once per AGENT_COUNT_TTL_MS (the count scans the table: 50 ms
 * at 100,000 agents; liveness itself moves in agent_down_time steps). Heartbeats are
 * stored as the API clock's ISO strings (db/reports.ts), so `>= cutoff` is isAlive's
 * `now - heartbeat <= agent_down_time`.
 */
function agentCounter(gauge: Gauge<'agent_type' | 'state'>, src: AgentSource) {
  let last: { at: number; rows: AgentCount[] } | undefined;
  const read = async (now: Date) => {
    if (last && now.getTime() - last.at < AGENT_COUNT_TTL_MS) return last.rows;
    const cutoff = new Date(now.getTime() - src.agentDownTime * 1000).toISOString();
    const rows = await src.db.query<AgentCount>(
      `SELECT agent_type, heartbeat_timestamp >= ? AS alive, COUNT(*) AS n FROM agents
        GROUP BY 1, 2`,
      [cutoff],
    );
    last = { at: now.getTime(), rows };
    return rows;
  };
  return async () => {
    gauge.reset();
    let rows: AgentCount[];
    try {
      rows = await read(src.clock.now());
    } catch (e) {
      src.log.warn({ err: (e as Error).message }, 'kumo_agents: reading the agents table failed');
      return;
    }
    for (const agent_type of AGENT_TYPE_NAMES)
      for (const state of ['alive', 'dead']) gauge.set({ agent_type, state }, 0);
    for (const r of rows)
      gauge.set({ agent_type: r.agent_type, state: r.alive ? 'alive' : 'dead' }, Number(r.n));
  };
}

export function apiMetrics(registry: Registry, src: AgentSource): ApiMetrics {
  const registers = [registry];
  const agents: Gauge<'agent_type' | 'state'> = new Gauge({
    name: 'kumo_agents',
    help: 'Agents known to the API by type and state (alive: heartbeat within agent_down_time).',
    labelNames: ['agent_type', 'state'],
    registers,
    collect: () => count(),
  });
  const count = agentCounter(agents, src);
  return {
    heartbeatLag: new Histogram({
      name: 'kumo_heartbeat_lag_seconds',
      help: 'Time from an agent sending report_state to the API storing it.',
      labelNames: ['agent_type'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'kumo_http_request_duration_seconds',
      help: 'HTTP requests served, by method, route pattern (unmatched: no route) and status code.',
      labelNames: ['method', 'route', 'code'],
      registers,
    }),
    rpcHandleDuration: new Histogram({
      name: 'kumo_rpc_handle_duration_seconds',
      help: 'q-plugin RPC requests handled by the API, by method and outcome (ok, error).',
      labelNames: ['method', 'outcome'],
      registers,
    }),
  };
}

export function createApiMetrics(src: AgentSource, registry = createRegistry()): ApiDaemonMetrics {
  return { registry, amqp: amqpMetrics(registry), api: apiMetrics(registry, src) };
}

/**
 * Streams that last minutes (the dashboard's feed, api/dashboard/routes.ts EVENTS_ROUTE)
 * would only fill the +Inf bucket: they are not request durations.
 */
const UNTIMED_ROUTES = new Set(['/dashboard/api/events']);

/** Observes every response by method, route pattern and status code (streams excepted). */
export function installHttpMetrics(app: FastifyInstance, duration: ApiMetrics['httpDuration']) {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    if (UNTIMED_ROUTES.has(route)) return;
    const labels = { method: req.method, route, code: String(reply.statusCode) };
    duration.observe(labels, reply.elapsedTime / 1000);
  });
}

/** `handler`, each message's handling observed by method and outcome. */
export function timedRpcHandler(
  handler: (message: Message) => Promise<unknown>,
  duration: ApiMetrics['rpcHandleDuration'],
): (message: Message) => Promise<unknown> {
  return async (message) => {
    const started = performance.now();
    let outcome = 'error';
    try {
      const result = await handler(message);
      outcome = 'ok';
      return result;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      duration.observe({ method: message.method, outcome }, seconds);
    }
  };
}
