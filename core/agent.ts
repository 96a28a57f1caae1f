/**
 * The agent lifecycle every Kumo agent shares: report_state with honest host facts,
 * the host queue, the reconcile queue, admin state, revival and clean shutdown.
 *
 * Invariants:
 * - the first report that reaches the broker carries start_flag; later ones do not;
 *   a report the broker refuses is sent again within its interval;
 * - hints and calls come on the host queue, a quorum queue that outlives a broker node
 *   (core/amqp.ts hostQueueSpec); deletes come on the topic's fanout through a classic
 *   auto-delete queue on the agent's own broker node, which, if it dies, dies with the
 *   agent's connection, and the reconnect resync covers what it held;
 * - `configurations` is measured anew for every report, never cached from start;
 * - a full resync runs at start, on revival, on an admin-state change, after every
 *   broker reconnect (hints sent while the agent was cut off may be lost) and every
 *   resync_interval (what a lost hint or a restarted daemon left behind is caught); its
 *   reason stays 'start' until the start resync has succeeded, whatever came meanwhile;
 * - stop() stops reporting and taking messages, lets running reconciles finish, then
 *   closes the broker: the data plane is never touched by a stop;
 * - with `metrics`, every reconcile run is observed once, by its kind (the resource part
 *   of its key, `resync` for the resync key) and outcome; every retry the queue schedules
 *   and every report sent again is counted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentKind, type AgentState, agentTypeByKind } from '../contracts/agents.ts';
import { TransientError } from '../contracts/errors.ts';
import { fanoutExchange, hostQueue, type Message, REPORTS_TOPIC } from '../contracts/messages.ts';
import type { Json } from '../contracts/schema.ts';
import { type Broker, hostQueueSpec } from './amqp.ts';
import type { KumoConfig } from './config.ts';
import type { Logger } from './log.ts';
import type { ReconcileMetrics } from './metrics.ts';
import { createReconcileQueue } from './reconcile.ts';

export const RESYNC_KEY = 'resync';
/** Pause between attempts at a report the broker refused. */
const REPORT_RETRY_MS = 250;

export interface AgentHooks {
  /**
   * How many reconciles may run at once (default 4). Agents whose reconciles wait long
   * inside their slot (the compute agent's port and shutdown waits) ask for more.
   */
  concurrency?: number;
  /** Host facts for this agent type; measured for every report. */
  configurations(): Promise<Record<string, Json>>;
  /** Reconciles everything this agent hosts and removes what nothing claims. */
  resync(reason: string): Promise<void>;
  /**
   * Reconciles one resource after a hint or host event (`<resource>:<id>`). `revision`
   * is the newest hint revision coalesced into this run, absent when any request for
   * the key carried none (resync, host event, retry): then the work must be done.
   */
  reconcile?(resource: string, id: string, revision?: number): Promise<void>;
  /** Runs once before the first resync; `enqueue` feeds host events into the queue. */
  start?(ctl: AgentControl): Promise<void>;
  /** Runs on stop, after the queue drained and before the broker closes. */
  stop?(): Promise<void>;
  /** Answers the other methods sent to this agent (calls such as get_console_output). */
  call?(message: Message): Promise<unknown>;
}

export interface AgentControl {
  /** Schedules `reconcile(resource, id)`, coalesced with other requests for the same key. */
  enqueue(resource: string, id: string): void;
}

export interface AgentDeps {
  kind: AgentKind;
  config: KumoConfig;
  broker: Broker;
  log: Logger;
  hooks: AgentHooks;
  clock?: () => Date;
  /** Reconcile durations, retries, queue depth and report retries; none counted when absent. */
  metrics?: ReconcileMetrics;
}

/** The metrics label of a queue key: its resource kind, or `resync`. */
export const kindOfKey = (key: string): string =>
  key === RESYNC_KEY ? RESYNC_KEY : (key.split(':')[0] as string);

/** `worker`, its runs observed in `metrics` (when given) by kind and outcome. */
function metered(
  worker: (key: string) => Promise<void>,
  metrics: ReconcileMetrics | undefined,
): (key: string) => Promise<void> {
  if (!metrics) return worker;
  return async (key) => {
    const started = performance.now();
    let outcome = 'error';
    try {
      await worker(key);
      outcome = 'success';
    } finally {
      const seconds = (performance.now() - started) / 1000;
      metrics.duration.observe({ kind: kindOfKey(key), outcome }, seconds);
    }
  };
}

export interface AgentHandle {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Sends one report now (also used by the periodic timer). */
  report(): Promise<void>;
}

export function createAgent(deps: AgentDeps): AgentHandle {
  const info = agentTypeByKind(deps.kind);
  const host = deps.config.DEFAULT.host;
  const intervalMs = deps.config.agent.report_interval * 1000;
  const log = deps.log.child({ agentType: info.agentType, host });
  const now = deps.clock ?? (() => new Date());
  let startFlag = true;
  let adminStateUp = true;
  let timer: NodeJS.Timeout | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let reporting: Promise<void> | undefined;
  let stopping = false;
  /** Until the start resync has succeeded, every resync run is the start one. */
  let started = false;
  let pendingReason = 'start';
  /** Per queued key: the newest hinted revision, or null once a request carried none. */
  const revisions = new Map<string, number | null>();
  const noteRevision = (key: string, revision: number | undefined) => {
    const known = revisions.get(key);
    if (revision === undefined || known === null) revisions.set(key, null);
    else revisions.set(key, Math.max(known ?? revision, revision));
  };

  const queue = createReconcileQueue({
    log,
    ...(deps.hooks.concurrency !== undefined ? { concurrency: deps.hooks.concurrency } : {}),
    onRetry: (key) => deps.metrics?.retries.inc({ kind: kindOfKey(key) }),
    worker: metered(async (key) => {
      if (key === RESYNC_KEY) {
        const reason = started ? pendingReason : 'start';
        log.info({ reason }, 'full resync');
        await deps.hooks.resync(reason);
        started = true;
        return;
      }
      const [resource, id] = key.split(':') as [string, string];
      const revision = revisions.get(key) ?? undefined;
      revisions.delete(key);
      if (!deps.hooks.reconcile)
        throw new Error(`this agent does not manage ${resource} resources`);
      try {
        await deps.hooks.reconcile(resource, id, revision);
      } catch (e) {
        // The retry must run: a duplicate hint coalescing into it must not let it skip.
        noteRevision(key, undefined);
        throw e;
      }
    }, deps.metrics),
  });
  const unwatchQueue = deps.metrics?.watchQueue(() => queue.stats());

  const resync = (reason: string) => {
    pendingReason = reason;
    queue.enqueue(RESYNC_KEY, 'resync');
  };

  const onMessage = async (message: Message): Promise<unknown> => {
    switch (message.method) {
      case 'resync':
        if (
          message.args.admin_state_up !== undefined &&
          message.args.admin_state_up !== adminStateUp
        ) {
          adminStateUp = message.args.admin_state_up;
          log.info({ adminStateUp }, 'admin state changed');
        }
        resync(message.args.reason);
        return;
      case 'hint': {
        const { resource, id, revision } = message.args;
        log.debug({ resource, id, revision }, 'hint');
        noteRevision(`${resource}:${id}`, revision);
        queue.enqueue(`${resource}:${id}`, 'live');
        return;
      }
      default:
        if (deps.hooks.call) return deps.hooks.call(message);
        throw new Error(`${info.binary} does not handle ${message.method}`);
    }
  };

  /**
   * A report the broker refused (its queue's node just died; the queue is declared again
   * on a live node within a second or two) is sent again until one interval has passed:
   * a failover delays a report, it does not drop one.
   */
  const castReport = async (state: AgentState) => {
    const deadline = Date.now() + Math.max(1000, intervalMs);
    for (;;) {
      const timeoutMs = deadline - Date.now();
      try {
        return await deps.broker.cast(
          REPORTS_TOPIC,
          'report_state',
          { agent_state: state, time: now().toISOString() },
          { expirationMs: intervalMs, timeoutMs },
        );
      } catch (e) {
        if (!(e instanceof TransientError) || stopping || timeoutMs <= REPORT_RETRY_MS) throw e;
        deps.metrics?.stateReportRetries.inc();
        await sleep(REPORT_RETRY_MS);
      }
    }
  };

  const sendReport = async () => {
    const state: AgentState = {
      agent_type: info.agentType,
      binary: info.binary,
      topic: info.topic,
      host,
      ...(info.zoned ? { availability_zone: deps.config.agent.availability_zone } : {}),
      configurations: await deps.hooks.configurations(),
      ...(startFlag ? { start_flag: true } : {}),
    };
    await castReport(state);
    if (startFlag) log.info('registered with start_flag');
    startFlag = false;
  };

  const report = async () => {
    reporting ??= sendReport()
      .catch((e: Error) => log.warn({ err: e.message }, 'state report failed'))
      .finally(() => {
        reporting = undefined;
      });
    return reporting;
  };

  return {
    async start() {
      const queueName = hostQueue(info.topic, host);
      deps.broker.consume(hostQueueSpec(queueName), onMessage);
      deps.broker.consume(
        {
          name: `${fanoutExchange(info.topic)}.${host}`,
          durable: false,
          autoDelete: true,
          bindings: [{ exchange: fanoutExchange(info.topic), routingKey: '' }],
        },
        onMessage,
      );
      deps.broker.onConnect(({ reconnected }) => {
        if (reconnected) {
          resync('reconnected');
          void report();
        }
      });
      await deps.broker.start();
      await deps.hooks.start?.({
        enqueue: (resource, id) => {
          noteRevision(`${resource}:${id}`, undefined);
          queue.enqueue(`${resource}:${id}`, 'live');
        },
      });
      resync('start');
      await report();
      timer = setInterval(() => void report(), intervalMs);
      const resyncMs = deps.config.agent.resync_interval * 1000;
      resyncTimer = setInterval(() => resync('periodic'), resyncMs);
    },
    async stop() {
      stopping = true;
      if (timer) clearInterval(timer);
      if (resyncTimer) clearInterval(resyncTimer);
      await reporting;
      await queue.drain();
      unwatchQueue?.();
      await deps.hooks.stop?.();
      await deps.broker.close();
    },
    report,
  };
}
