/**
 * Our own OVSDB JSON-RPC 1.0 client (RFC 7047) over a unix socket or TCP, no dependency:
 * transact, monitor / monitor_cancel with `update` notifications, echo both ways,
 * list_dbs, get_schema, optional keepalive and reconnect that re-establishes monitors.
 * The connection itself (pending requests, timeouts, reconnect, keepalive) is the
 * shared socket session in host/session; this module is OVSDB's framing and methods.
 *
 * Invariants:
 * - Every request settles exactly once: by its reply (result or error), by its timeout
 *   (`OvsdbTimeoutError`), or by connection loss / close (`OvsdbConnectionError`). A reply
 *   that arrives after its request timed out is dropped.
 * - A request made while the connection is down rejects at once with reason
 *   'not-connected' ('closed' after close()); nothing is queued behind the caller's back.
 * - Server `echo` requests (ovsdb-server's inactivity probe on TCP) are always answered.
 * - After a reconnect every monitor registered through `monitor()` (and not cancelled) is
 *   re-issued before `reconnected` fires, and the event carries each monitor's fresh
 *   initial state: callers must treat it as a full resync, updates in between are lost.
 * - Register `onUpdate` *before* calling `monitor()`: an update can follow the monitor
 *   reply in the same chunk and is delivered synchronously.
 */
import type net from 'node:net';
import {
  type CallOptions,
  type ConnectionReason,
  createSession,
  type Framing,
  type Keepalive,
  listen,
  type Session,
  SessionConnectionError,
  type SessionLog,
  SessionTimeoutError,
} from '../session/session.ts';
import { createRpcDecoder, OvsdbProtocolError, type RpcMessage } from './ovsdb-stream.ts';
import type {
  DbSchema,
  MonitorRequests,
  OvsdbOperation,
  OvsdbOpResult,
  TableUpdates,
} from './ovsdb-types.ts';

export { createJsonSplitter, OvsdbProtocolError } from './ovsdb-stream.ts';
export * from './ovsdb-types.ts';

// ---- errors ---------------------------------------------------------------------------

/** The server said no: a failed operation (`opIndex` set) or a JSON-RPC error (`opIndex` null). */
export class OvsdbError extends Error {
  override name = 'OvsdbError';
  readonly method: string;
  /** Index into the ops array; `ops.length` means the commit itself failed (e.g. a constraint). */
  readonly opIndex: number | null;
  readonly error: string;
  readonly details: string | undefined;
  constructor(method: string, opIndex: number | null, error: string, details?: string) {
    const where = opIndex === null ? method : `${method} op ${opIndex}`;
    super(`ovsdb ${where}: ${error}${details ? ` (${details})` : ''}`);
    this.method = method;
    this.opIndex = opIndex;
    this.error = error;
    this.details = details;
  }
}

export class OvsdbTimeoutError extends SessionTimeoutError {
  override name = 'OvsdbTimeoutError';
  constructor(method: string, timeoutMs: number) {
    super('ovsdb', method, timeoutMs);
  }
}

export type OvsdbConnectionReason = ConnectionReason;

export class OvsdbConnectionError extends SessionConnectionError {
  override name = 'OvsdbConnectionError';
  constructor(reason: OvsdbConnectionReason, remote: string, cause?: unknown) {
    super('ovsdb', reason, remote, cause);
  }
}

// ---- public types ---------------------------------------------------------------------

/** Structural subset of pino's logger, so host/ does not depend on core/log. */
export type OvsdbLog = SessionLog;

export interface OvsdbClientOptions {
  /** `unix:/path/db.sock` or `tcp:host:port` (`tcp:[::1]:6640` for IPv6). */
  socket: string;
  log?: OvsdbLog;
  /** Per-request reply timeout, and the connect timeout; default 30 s. */
  timeoutMs?: number;
  /** Reconnect with exponential backoff after connection loss; off by default. */
  reconnect?: { initialMs: number; maxMs: number };
  /** Send `echo` when idle; drop the connection after `count` unanswered echoes. */
  keepalive?: { intervalMs: number; count: number };
}

export interface ReconnectedEvent {
  /** monitorId → the fresh initial state of that monitor. */
  monitors: Record<string, TableUpdates>;
}

export type { CallOptions } from '../session/session.ts';

export interface OvsdbClient {
  transact(db: string, ops: OvsdbOperation[], opts?: CallOptions): Promise<OvsdbOpResult[]>;
  monitor(
    db: string,
    monitorId: string,
    requests: MonitorRequests,
    opts?: CallOptions,
  ): Promise<TableUpdates>;
  monitorCancel(monitorId: string): Promise<void>;
  onUpdate(monitorId: string, cb: (updates: TableUpdates) => void): () => void;
  onReconnected(cb: (ev: ReconnectedEvent) => void): () => void;
  onDisconnected(cb: (err: OvsdbConnectionError) => void): () => void;
  /** Client-side keepalive; resolves with the round-trip time in ms. */
  echo(opts?: CallOptions): Promise<number>;
  listDbs(): Promise<string[]>;
  getSchema(db: string): Promise<DbSchema>;
  isConnected(): boolean;
  /** Rejects pending requests with reason 'closed', stops reconnecting, ends the socket. */
  close(): Promise<void>;
}

// ---- wire -----------------------------------------------------------------------------

interface RpcRequest {
  method: string;
  params: unknown[];
}

type OvsdbSession = Session<RpcRequest, RpcMessage, ReconnectedEvent, OvsdbConnectionError>;

/** What the client keeps across connections: monitors to re-issue, update listeners. */
interface Subs {
  remote: string;
  log: OvsdbLog | undefined;
  monitors: Map<string, { db: string; requests: MonitorRequests }>;
  updateCbs: Map<string, Set<(u: TableUpdates) => void>>;
}

interface State extends Subs {
  s: OvsdbSession;
}

export function parseRemote(remote: string): net.NetConnectOpts {
  if (remote.startsWith('unix:')) return { path: remote.slice(5) };
  const m = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(remote);
  if (!m) throw new TypeError(`ovsdb remote must be unix:PATH or tcp:HOST:PORT, got ${remote}`);
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

function rpcError(method: string, error: unknown): OvsdbError {
  if (error !== null && typeof error === 'object') {
    const e = error as { error?: unknown; details?: unknown };
    const details = typeof e.details === 'string' ? e.details : undefined;
    return new OvsdbError(method, null, String(e.error ?? JSON.stringify(error)), details);
  }
  return new OvsdbError(method, null, String(error));
}

/** JSON-RPC 1.0 as ovsdb-server speaks it: numeric ids are ours, anything else is its. */
const framing: Framing<RpcRequest, RpcMessage> = {
  encode: (req, id) => JSON.stringify({ method: req.method, params: req.params, id }),
  decoder: createRpcDecoder,
  classify(msg) {
    if (msg.method !== undefined) return { kind: 'event' };
    const id = typeof msg.id === 'number' ? msg.id : -1;
    return msg.error !== null && msg.error !== undefined
      ? { kind: 'error', id }
      : { kind: 'reply', id };
  },
  replyError: (msg, method) => rpcError(method, msg.error),
};

function request(
  call: OvsdbSession['call'],
  method: string,
  params: unknown[],
  opts?: CallOptions,
): Promise<unknown> {
  return call(method, { method, params }, (msg) => msg.result, opts);
}

function onServerMessage(st: Subs, s: OvsdbSession, msg: RpcMessage): void {
  const isNotification = msg.id === null || msg.id === undefined;
  if (msg.method === 'echo' && !isNotification) {
    st.log?.debug({ remote: st.remote }, 'ovsdb answered server echo');
    s.send(JSON.stringify({ id: msg.id, result: msg.params ?? [], error: null }));
  } else if (msg.method === 'update' && Array.isArray(msg.params)) {
    const updates = msg.params[1] as TableUpdates;
    s.emit(st.updateCbs.get(String(msg.params[0])) ?? [], updates);
  } else if (!isNotification) {
    const error = `unknown method ${String(msg.method)}`;
    s.send(JSON.stringify({ id: msg.id, result: null, error }));
  } else {
    st.log?.debug({ remote: st.remote, method: msg.method }, 'ovsdb notification ignored');
  }
}

/** Re-issues every registered monitor on a new connection (none on the first). */
async function resubscribe(st: Subs, call: OvsdbSession['call']): Promise<ReconnectedEvent> {
  const monitors: Record<string, TableUpdates> = {};
  for (const [monitorId, m] of st.monitors) {
    const params = [m.db, monitorId, m.requests];
    monitors[monitorId] = (await request(call, 'monitor', params)) as TableUpdates;
  }
  return { monitors };
}

// ---- API ------------------------------------------------------------------------------

async function transact(
  st: State,
  db: string,
  ops: OvsdbOperation[],
  opts?: CallOptions,
): Promise<OvsdbOpResult[]> {
  const results = (await request(st.s.call, 'transact', [db, ...ops], opts)) as
    | (OvsdbOpResult | null)[]
    | null;
  const list = results ?? [];
  const failed = list.findIndex((r) => r?.error !== undefined);
  const bad = list[failed];
  if (bad?.error !== undefined) throw new OvsdbError('transact', failed, bad.error, bad.details);
  return list as OvsdbOpResult[];
}

async function monitor(
  st: State,
  db: string,
  monitorId: string,
  requests: MonitorRequests,
  opts?: CallOptions,
): Promise<TableUpdates> {
  const initial = await request(st.s.call, 'monitor', [db, monitorId, requests], opts);
  st.monitors.set(monitorId, { db, requests });
  return initial as TableUpdates;
}

async function monitorCancel(st: State, monitorId: string): Promise<void> {
  st.monitors.delete(monitorId);
  await request(st.s.call, 'monitor_cancel', [monitorId]);
}

function onUpdate(st: State, monitorId: string, cb: (u: TableUpdates) => void): () => void {
  let cbs = st.updateCbs.get(monitorId);
  if (!cbs) {
    cbs = new Set();
    st.updateCbs.set(monitorId, cbs);
  }
  return listen(cbs, cb);
}

async function echo(call: OvsdbSession['call'], opts?: CallOptions): Promise<number> {
  const t0 = performance.now();
  await request(call, 'echo', ['kumo'], opts);
  return performance.now() - t0;
}

/** Keepalive by `echo`: its reply (or anything else received) proves the line alive. */
function keepalive(s: () => OvsdbSession, ka: { intervalMs: number; count: number }): Keepalive {
  const timeoutMs = ka.intervalMs * (ka.count + 1);
  const ping = () => void echo(s().call, { timeoutMs }).catch(() => undefined);
  return { ...ka, ping };
}

function openSession(opts: OvsdbClientOptions, st: Subs): OvsdbSession {
  const remote = opts.socket;
  const s: OvsdbSession = createSession({
    name: 'ovsdb',
    connect: parseRemote(remote),
    context: { remote },
    log: opts.log,
    timeoutMs: opts.timeoutMs ?? 30_000,
    framing,
    errors: {
      timeout: (method, ms) => new OvsdbTimeoutError(method, ms),
      connection: (reason, cause) => new OvsdbConnectionError(reason, remote, cause),
      protocol: (message) => new OvsdbProtocolError(message),
    },
    handshake: (call) => resubscribe(st, call),
    onEvent: (msg) => onServerMessage(st, s, msg),
    reconnect: opts.reconnect,
    keepalive: opts.keepalive && keepalive(() => s, opts.keepalive),
  });
  return s;
}

/** Connects (the first connection must succeed, reconnect or not) and returns the client. */
export async function createOvsdbClient(opts: OvsdbClientOptions): Promise<OvsdbClient> {
  const subs: Subs = {
    remote: opts.socket,
    log: opts.log,
    monitors: new Map(),
    updateCbs: new Map(),
  };
  const st: State = { ...subs, s: openSession(opts, subs) };
  await st.s.open();
  return {
    transact: (db, ops, o) => transact(st, db, ops, o),
    monitor: (db, id, requests, o) => monitor(st, db, id, requests, o),
    monitorCancel: (id) => monitorCancel(st, id),
    onUpdate: (id, cb) => onUpdate(st, id, cb),
    onReconnected: (cb) => st.s.onReconnected(cb),
    onDisconnected: (cb) => st.s.onDisconnected(cb),
    echo: (o) => echo(st.s.call, o),
    listDbs: async () => (await request(st.s.call, 'list_dbs', [])) as string[],
    getSchema: async (db) => (await request(st.s.call, 'get_schema', [db])) as DbSchema,
    isConnected: () => st.s.isOpen(),
    close: () => st.s.close(),
  };
}
