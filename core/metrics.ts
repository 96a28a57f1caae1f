/**
 * Prometheus metrics: one Registry per daemon (never prom-client's global one), the metric
 * sets every daemon, every agent and the executor count, the per-binary port offsets, and
 * the tiny HTTP listener that serves `GET /metrics`.
 *
 * Invariants:
 * - every metric lives in the registry passed to its set's factory, so two daemons (or two
 *   tests) in one process never share or collide on a metric; the sets are plain objects
 *   passed down, and library code takes them as optional dependencies;
 * - label values are bounded: methods, resource kinds, tool names, outcomes — never ids,
 *   paths or raw URLs;
 * - one kumo.conf serves every daemon of a host, so each listens on `[DEFAULT] metrics_port`
 *   plus its fixed offset (METRICS_PORT_OFFSETS); 0 turns the listener off; a port that
 *   cannot be bound stops the daemon with an error naming the key and the address.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { KumoConfig } from './config.ts';
import { ConfigError } from './config.ts';
import type { Logger } from './log.ts';

/** Each daemon's offset from `[DEFAULT] metrics_port`; the largest bounds the key (65529). */
export const METRICS_PORT_OFFSETS = {
  'kumo-api': 0,
  'kumo-ovs-agent': 1,
  'kumo-dhcp-agent': 2,
  'kumo-l3-agent': 3,
  'kumo-lbaas-agent': 4,
  'kumo-volume-agent': 5,
  'kumo-compute-agent': 6,
} as const satisfies Record<string, number>;

export type MetricsBinary = keyof typeof METRICS_PORT_OFFSETS;

/** Buckets (seconds) for work that takes from milliseconds to minutes (reconciles). */
const LONG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * prom-client's gauges named like counters (promtool rejects a gauge ending in _total);
 * the same counts stay exposed by type as nodejs_active_handles, nodejs_active_requests
 * and nodejs_active_resources.
 */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** A fresh registry holding prom-client's default process metrics, promtool-clean. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}

/** What the AMQP client (core/amqp.ts) counts, in every daemon. */
export interface AmqpMetrics {
  rpcCallDuration: Histogram<'method' | 'outcome'>;
  reconnects: Counter;
  publishFailures: Counter<'reason'>;
}

export function amqpMetrics(registry: Registry): AmqpMetrics {
  const registers = [registry];
  return {
    rpcCallDuration: new Histogram({
      name: 'kumo_rpc_call_duration_seconds',
      help: 'AMQP RPC calls this daemon made, until the reply (outcome ok, error or timeout).',
      labelNames: ['method', 'outcome'],
      buckets: LONG_BUCKETS,
      registers,
    }),
    reconnects: new Counter({
      name: 'kumo_amqp_reconnects_total',
      help: 'Broker connections made again after the first one was lost.',
      registers,
    }),
    publishFailures: new Counter({
      name: 'kumo_amqp_publish_failures_total',
      help: 'Publishes not confirmed: nacked, refused, channel closed, broker unavailable, or no confirm in time.',
      labelNames: ['reason'],
      registers,
    }),
  };
}

export interface QueueStats {
  queued: number;
  running: number;
  retrying: number;
}

/** What the agent lifecycle (core/agent.ts) counts. */
export interface ReconcileMetrics {
  duration: Histogram<'kind' | 'outcome'>;
  retries: Counter<'kind'>;
  stateReportRetries: Counter;
  /** Adds a reconcile queue to `kumo_reconcile_queue_depth`; returns its removal. */
  watchQueue(stats: () => QueueStats): () => void;
}

export function reconcileMetrics(registry: Registry): ReconcileMetrics {
  const registers = [registry];
  const queues = new Set<() => QueueStats>();
  const depth: Gauge<'state'> = new Gauge({
    name: 'kumo_reconcile_queue_depth',
    help: 'Reconcile jobs by state: queued (ready to run), running, retrying (waiting out a backoff).',
    labelNames: ['state'],
    registers,
    collect() {
      const sum: QueueStats = { queued: 0, running: 0, retrying: 0 };
      for (const stats of queues) {
        const s = stats();
        for (const k of ['queued', 'running', 'retrying'] as const) sum[k] += s[k];
      }
      for (const [state, n] of Object.entries(sum)) depth.set({ state }, n);
    },
  });
  return {
    duration: new Histogram({
      name: 'kumo_reconcile_duration_seconds',
      help: 'Reconciles by resource kind (resync: a full resync) and outcome (success, error).',
      labelNames: ['kind', 'outcome'],
      buckets: LONG_BUCKETS,
      registers,
    }),
    retries: new Counter({
      name: 'kumo_reconcile_retries_total',
      help: 'Failed reconciles the queue retries after a backoff, by resource kind.',
      labelNames: ['kind'],
      registers,
    }),
    stateReportRetries: new Counter({
      name: 'kumo_state_report_retries_total',
      help: 'report_state casts the broker refused and that were sent again.',
      registers,
    }),
    watchQueue(stats) {
      queues.add(stats);
      return () => queues.delete(stats);
    },
  };
}

/** What the step executor (agents/lib/steps.ts) counts. */
export interface StepMetrics {
  applied: Counter<'tool'>;
  dnsmasqReloads: Counter<'how'>;
  haproxyReloads: Counter;
  iptablesRestores: Counter;
}

export function stepMetrics(registry: Registry): StepMetrics {
  const registers = [registry];
  return {
    applied: new Counter({
      name: 'kumo_steps_applied_total',
      help: 'Plan steps applied, by tool (command name, ovsdb, file, mkdir, remove, daemon name, agent step kind).',
      labelNames: ['tool'],
      registers,
    }),
    dnsmasqReloads: new Counter({
      name: 'kumo_dnsmasq_reloads_total',
      help: 'dnsmasq reloads: SIGHUP after file rewrites (how=sighup), or stop and start (how=restart).',
      labelNames: ['how'],
      registers,
    }),
    haproxyReloads: new Counter({
      name: 'kumo_haproxy_reloads_total',
      help: 'Hitless haproxy reloads (haproxy -sf <old pid>) run.',
      registers,
    }),
    iptablesRestores: new Counter({
      name: 'kumo_iptables_restore_runs_total',
      help: 'iptables-restore and ip6tables-restore runs.',
      registers,
    }),
  };
}

/** Reconnects of the host daemons' sessions (host/session): ovsdb-server, libvirtd. */
export interface LinkMetrics {
  ovsdbReconnects: Counter;
  libvirtReconnects: Counter;
}

export function linkMetrics(registry: Registry): LinkMetrics {
  const registers = [registry];
  return {
    ovsdbReconnects: new Counter({
      name: 'kumo_ovsdb_reconnects_total',
      help: 'OVSDB connections made again after one was lost.',
      registers,
    }),
    libvirtReconnects: new Counter({
      name: 'kumo_libvirt_reconnects_total',
      help: 'libvirtd connections made again after one was lost.',
      registers,
    }),
  };
}

/** Everything an agent daemon counts, in its own registry. */
export interface AgentDaemonMetrics {
  registry: Registry;
  amqp: AmqpMetrics;
  reconcile: ReconcileMetrics;
  steps: StepMetrics;
  links: LinkMetrics;
}

export function createAgentMetrics(registry = createRegistry()): AgentDaemonMetrics {
  return {
    registry,
    amqp: amqpMetrics(registry),
    reconcile: reconcileMetrics(registry),
    steps: stepMetrics(registry),
    links: linkMetrics(registry),
  };
}

/** Where `binary` serves metrics under `config`; undefined when [DEFAULT] metrics_port is 0. */
export function metricsAddress(
  config: KumoConfig,
  binary: MetricsBinary,
): { host: string; port: number } | undefined {
  const base = config.DEFAULT.metrics_port;
  if (base === 0) return undefined;
  return { host: config.DEFAULT.metrics_bind_host, port: base + METRICS_PORT_OFFSETS[binary] };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  host: string;
  port: number;
  log: Logger;
  /** What the bind error names; `[DEFAULT] metrics_port` unless told. */
  key?: string;
}

/** `GET /metrics` in Prometheus's text format; 404 elsewhere, 405 for other methods. */
export function serveMetrics(registry: Registry, opts: ServeOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
    } else if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('only GET\n');
    } else {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (e: Error) => {
          opts.log.warn({ err: e.message }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
        },
      );
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const where = `${opts.host}:${opts.port}`;
      reject(
        new ConfigError(
          `${opts.key ?? '[DEFAULT] metrics_port'}: cannot listen on ${where} (${e.code ?? e.message})`,
        ),
      );
    });
    server.listen(opts.port, opts.host, () => {
      const port = (server.address() as AddressInfo).port;
      opts.log.info({ host: opts.host, port }, 'metrics listening');
      resolve({
        port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

/** The daemon's metrics listener when [DEFAULT] metrics_port is set, else undefined. */
export async function startMetrics(
  config: KumoConfig,
  binary: MetricsBinary,
  registry: Registry,
  log: Logger,
): Promise<MetricsServer | undefined> {
  const address = metricsAddress(config, binary);
  if (!address) return undefined;
  const offset = METRICS_PORT_OFFSETS[binary];
  const key = `[DEFAULT] metrics_port (${config.DEFAULT.metrics_port} + ${offset} for ${binary})`;
  return serveMetrics(registry, { ...address, log, key });
}
