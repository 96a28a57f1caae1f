/**
 * Agent liveness: consumes `report_state` casts and stores them in batches.
 *
 * Invariants:
 * - a report is acknowledged to the broker only after the transaction holding it
 *   committed, so a crash of kumo-api loses no acknowledged heartbeat; a batch that fails
 *   to commit is requeued (TransientError), never dead-lettered;
 * - every heartbeat is stamped with the API's clock, never the agent's;
 * - an agent whose previous heartbeat was older than agent_down_time (or that the API did
 *   not know) and that did not just start is told so with a `resync {reason: revived}`
 *   cast to its host queue: it may have missed hints while it was cut off.
 */
import type { ReportStateArgs } from '../contracts/agents.ts';
import { TransientError } from '../contracts/errors.ts';
import { hostQueue } from '../contracts/messages.ts';
import type { Broker } from '../core/amqp.ts';
import type { Logger } from '../core/log.ts';
import type { Db } from './db/index.ts';
import { storeReports } from './db/reports.ts';
import type { ApiMetrics } from './metrics.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface ReportConsumerDeps {
  db: Db;
  broker: Pick<Broker, 'cast'>;
  log: Logger;
  clock: Clock;
  agentDownTime: number;
  maxBatch?: number;
  maxWaitMs?: number;
  /** Observes each stored report's lag (API clock minus the report's `time`); optional. */
  heartbeatLag?: ApiMetrics['heartbeatLag'];
}

interface Waiting {
  args: ReportStateArgs;
  resolve: () => void;
  reject: (e: Error) => void;
}

export function createReportConsumer(deps: ReportConsumerDeps) {
  const maxBatch = deps.maxBatch ?? 1000;
  const maxWaitMs = deps.maxWaitMs ?? 20;
  let queue: Waiting[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;

  const flush = async () => {
    timer = undefined;
    const batch = queue.splice(0, maxBatch);
    if (batch.length === 0) return;
    const now = deps.clock.now();
    try {
      const states = batch.map((w) => w.args.agent_state);
      const stored = await deps.db.transaction((tx) =>
        storeReports(tx, states, now, deps.agentDownTime),
      );
      batch.forEach((w, i) => {
        w.resolve();
        afterStore(w.args, stored[i]?.previous ?? 'alive', now);
      });
    } catch (e) {
      deps.log.error(
        { err: (e as Error).message, reports: batch.length },
        'storing state reports failed',
      );
      // A database that is down, or a deadlock with another replica's batch, passes: the
      // broker requeues the reports (their TTL bounds how long) instead of dead-lettering.
      const retry = new TransientError('storing state reports failed', { cause: e });
      for (const w of batch) w.reject(retry);
    }
  };

  const afterStore = (args: ReportStateArgs, previous: 'new' | 'alive' | 'dead', now: Date) => {
    const s = args.agent_state;
    const lagMs = now.getTime() - Date.parse(args.time);
    if (Number.isFinite(lagMs))
      deps.heartbeatLag?.observe({ agent_type: s.agent_type }, Math.max(0, lagMs) / 1000);
    const skewMs = Math.abs(lagMs);
    if (skewMs > deps.agentDownTime * 1000) {
      deps.log.warn(
        { host: s.host, agentType: s.agent_type, skewMs },
        'agent clock differs from the API clock',
      );
    }
    if (previous === 'alive' || s.start_flag) return;
    deps.log.info(
      { host: s.host, agentType: s.agent_type, previous },
      'agent revived; asking it to resync',
    );
    deps.broker
      .cast(
        hostQueue(s.topic, s.host),
        'resync',
        { reason: 'revived' },
        { expirationMs: deps.agentDownTime * 1000 },
      )
      .catch((e: Error) =>
        deps.log.warn({ err: e.message, host: s.host }, 'revival hint not sent'),
      );
  };

  const run = () => {
    flushing = flush().finally(() => {
      flushing = undefined;
      // The next batch waits one turn: the acks of this one (core/amqp-consumer.ts sends
      // them on the next turn) reach the broker first, so it refills the prefetch window
      // while the next batch is being stored, instead of after.
      if (queue.length > 0) setImmediate(schedule);
    });
  };

  const schedule = () => {
    if (flushing) return;
    if (queue.length >= maxBatch) {
      if (timer) clearTimeout(timer);
      run();
    } else {
      timer ??= setTimeout(run, maxWaitMs);
    }
  };

  return {
    /** The broker handler for `report_state`: resolves once the report is committed. */
    handle(args: ReportStateArgs): Promise<void> {
      return new Promise((resolve, reject) => {
        queue.push({ args, resolve, reject });
        schedule();
      });
    },
    /** Flushes what is buffered; used on shutdown. */
    async close() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      while (flushing || queue.length > 0) {
        if (flushing) await flushing;
        else await flush();
      }
      queue = [];
    },
  };
}
