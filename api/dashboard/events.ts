/**
 * The dashboard's live feed: server-sent events (`text/event-stream`) from one ticker
 * that every open dashboard shares.
 *
 * Each tick (1 s) reads two things once, whatever the number of viewers:
 * - the agents overview (overview.ts), only while an admin watches, sent as
 *   `event: agents` to admin viewers whenever it changed (a heartbeat, an agent dying, a
 *   rehosting);
 * - a digest of the resources the other pages show (ids, statuses, revisions of networks,
 *   subnets, ports, routers, floating IPs, instances, volumes, pools, VIPs, members), sent
 *   as `event: changed` when it changed. Pages then re-read through the ordinary APIs with
 *   the viewer's token, so what a viewer sees is always what policy lets it read; the
 *   digest itself says only that something changed.
 *
 * Invariants:
 * - only the ticker reads and writes: a new viewer gets the full state from the next tick
 *   (within a second), so a viewer never receives an older state after a newer one, and
 *   connecting costs no read of its own;
 * - the ticker runs only while someone watches; a failed read is logged and the next tick
 *   tries again (viewers keep their last state);
 * - a viewer that goes away is dropped at once; one that does not read (more than
 *   MAX_BUFFERED bytes waiting) is cut off rather than buffered without bound; every
 *   stream ends after MAX_STREAM_MS, so the page reconnects and its token is checked
 *   again (a revoked token or a lost role stops the feed within that time);
 * - a comment line every 15 s keeps proxies from closing idle streams; after close()
 *   nothing is written and new viewers are ended at once.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../core/log.ts';
import type { Queryable } from '../db/index.ts';
import { agentOverview } from './overview.ts';

const TICK_MS = 1000;
const KEEPALIVE_MS = 15_000;
export const MAX_STREAM_MS = 300_000;
const MAX_BUFFERED = 1 << 20;

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
  /** Streams to `viewer` until its connection closes; the next tick sends it everything. */
  attach(viewer: Viewer): void;
  close(): void;
}

interface State {
  agents?: string;
  digest: string;
}

const frame = (event: string, data: unknown) =>
  `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

async function resourceDigest(db: Queryable): Promise<string> {
  const hash = createHash('sha256');
  for (const sql of DIGEST_SQL) hash.update(JSON.stringify(await db.query(`${sql} ORDER BY id`)));
  return hash.digest('hex').slice(0, 16);
}

interface HubDeps {
  db: Queryable;
  log: Logger;
  now: () => Date;
  downTime: number;
}

async function readState(deps: HubDeps, withAgents: boolean): Promise<State> {
  const now = deps.now();
  const digest = frame('changed', { digest: await resourceDigest(deps.db) });
  if (!withAgents) return { digest };
  const agents = await agentOverview(deps.db, { admin: true, now, downTime: deps.downTime });
  return { agents: frame('agents', { now: now.toISOString(), agents }), digest };
}

/** Writes `text`, or cuts the viewer off when it has stopped reading. */
function write(v: Viewer, text: string) {
  if (v.res.writableLength > MAX_BUFFERED) v.res.destroy();
  else v.res.write(text);
}

export function createEventHub(deps: HubDeps): EventHub {
  const viewers = new Set<Viewer>();
  /** Viewers that have not had the full state yet. */
  const fresh = new Set<Viewer>();
  let last: State | undefined;
  let timer: NodeJS.Timeout | undefined;
  let keepalive: NodeJS.Timeout | undefined;
  let busy = false;
  let closed = false;

  const send = (v: Viewer, state: State) => {
    const all = fresh.has(v);
    fresh.delete(v);
    if (v.admin && state.agents && (all || state.agents !== last?.agents)) write(v, state.agents);
    if (all || state.digest !== last?.digest) write(v, state.digest);
  };

  const tick = async () => {
    if (busy || closed) return;
    busy = true;
    try {
      const state = await readState(
        deps,
        [...viewers].some((v) => v.admin),
      );
      for (const v of viewers) if (!closed) send(v, state);
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

  const startTimers = () => {
    timer = setInterval(() => void tick(), TICK_MS);
    keepalive = setInterval(() => {
      for (const v of viewers) write(v, ': keepalive\n\n');
    }, KEEPALIVE_MS);
    void tick();
  };

  return {
    attach(viewer) {
      if (closed) return void viewer.res.end();
      viewers.add(viewer);
      fresh.add(viewer);
      const end = setTimeout(() => viewer.res.end(), MAX_STREAM_MS);
      viewer.res.on('close', () => {
        clearTimeout(end);
        viewers.delete(viewer);
        fresh.delete(viewer);
        if (viewers.size === 0) stopTimers();
      });
      if (!timer) startTimers();
    },
    close() {
      closed = true;
      for (const v of viewers) v.res.end();
      viewers.clear();
      fresh.clear();
      stopTimers();
    },
  };
}
