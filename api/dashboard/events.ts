/**
 * The dashboard's live feed: server-sent events (`text/event-stream`) from one ticker
 * that every open dashboard shares.
 *
 * Each tick (1 s) reads two things once, whatever the number of viewers:
 * - the agents overview (overview.ts), sent as `event: agents` to admin viewers whenever
 *   it changed (a heartbeat, an agent dying, a rehosting);
 * - a digest of the resources the other pages show (ids, statuses, revisions of networks,
 *   subnets, ports, routers, floating IPs, instances, volumes, pools, VIPs, members), sent
 *   as `event: changed` when it changed. Pages then re-read through the ordinary APIs with
 *   the viewer's token, so what a viewer sees is always what policy lets it read; the
 *   digest itself says only that something changed.
 *
 * Invariants: the ticker runs only while someone watches; a failed read is logged and the
 * next tick tries again (viewers keep their last state); a viewer that goes away is
 * dropped at once, and a comment line every 15 s keeps proxies from closing idle streams.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../core/log.ts';
import type { Queryable } from '../db/index.ts';
import { type AgentOverview, agentOverview } from './overview.ts';

const TICK_MS = 1000;
const KEEPALIVE_MS = 15_000;

const DIGEST_SQL = [
  'SELECT id, status, revision_number FROM networks',
  'SELECT id, revision_number FROM subnets',
  'SELECT id, status, revision_number FROM ports',
  'SELECT id, status, revision_number FROM routers',
  'SELECT id, status, revision_number, fixed_ip_address FROM floatingips',
  'SELECT id, vm_state, task_state, power_state, updated_at FROM instances WHERE deleted_at IS NULL',
  'SELECT id, status, status_revision, revision_number FROM volumes',
  'SELECT id, status, status_revision, revision_number FROM lb_pools',
  'SELECT id, status, status_revision FROM lb_vips',
  'SELECT id, status, status_revision FROM lb_members',
];

export interface Viewer {
  admin: boolean;
  res: ServerResponse;
}

export interface EventHub {
  /** Streams to `viewer` until its connection closes; sends the current state at once. */
  attach(viewer: Viewer): void;
  close(): void;
}

const frame = (event: string, data: unknown) =>
  `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

async function resourceDigest(db: Queryable): Promise<string> {
  const hash = createHash('sha256');
  for (const sql of DIGEST_SQL) hash.update(JSON.stringify(await db.query(`${sql} ORDER BY id`)));
  return hash.digest('hex').slice(0, 16);
}

export function createEventHub(deps: {
  db: Queryable;
  log: Logger;
  now: () => Date;
  downTime: number;
}): EventHub {
  const viewers = new Set<Viewer>();
  let last: { agents: string; digest: string } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let keepalive: NodeJS.Timeout | undefined;
  let busy = false;

  const read = async () => {
    const now = deps.now();
    const agents: AgentOverview[] = await agentOverview(deps.db, {
      admin: true,
      now,
      downTime: deps.downTime,
    });
    return {
      agents: frame('agents', { now: now.toISOString(), agents }),
      digest: frame('changed', { digest: await resourceDigest(deps.db) }),
    };
  };

  const send = (v: Viewer, state: { agents: string; digest: string }, force: boolean) => {
    if (v.admin && (force || state.agents !== last?.agents)) v.res.write(state.agents);
    if (force || state.digest !== last?.digest) v.res.write(state.digest);
  };

  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const state = await read();
      for (const v of viewers) send(v, state, false);
      last = state;
    } catch (e) {
      deps.log.warn({ err: (e as Error).message }, 'dashboard feed read failed');
    } finally {
      busy = false;
    }
  };

  const stopTimers = () => {
    clearInterval(timer);
    clearInterval(keepalive);
    timer = keepalive = undefined;
    last = undefined;
  };

  return {
    attach(viewer) {
      viewers.add(viewer);
      viewer.res.on('close', () => {
        viewers.delete(viewer);
        if (viewers.size === 0) stopTimers();
      });
      timer ??= setInterval(() => void tick(), TICK_MS);
      keepalive ??= setInterval(() => {
        for (const v of viewers) v.res.write(': keepalive\n\n');
      }, KEEPALIVE_MS);
      read().then(
        (state) => send(viewer, state, true),
        (e: Error) => deps.log.warn({ err: e.message }, 'dashboard feed read failed'),
      );
    },
    close() {
      for (const v of viewers) v.res.end();
      viewers.clear();
      stopTimers();
    },
  };
}
