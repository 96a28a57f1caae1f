/**
 * Our own OVSDB JSON-RPC 1.0 client (RFC 7047) over a unix socket or TCP, no dependency:
 * transact, monitor / monitor_cancel with `update` notifications, echo both ways,
 * list_dbs, get_schema, and optional reconnect that re-establishes monitors.
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
import net from 'node:net';
import { createJsonSplitter, type JsonSplitter, OvsdbProtocolError } from './ovsdb-stream.ts';
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

export class OvsdbTimeoutError extends Error {
  override name = 'OvsdbTimeoutError';
  readonly method: string;
  readonly timeoutMs: number;
  constructor(method: string, timeoutMs: number) {
    super(`ovsdb ${method}: no reply within ${timeoutMs} ms`);
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

export type OvsdbConnectionReason = 'connect-failed' | 'lost' | 'closed' | 'not-connected';

export class OvsdbConnectionError extends Error {
  override name = 'OvsdbConnectionError';
  readonly reason: OvsdbConnectionReason;
  readonly remote: string;
  constructor(reason: OvsdbConnectionReason, remote: string, cause?: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super(`ovsdb ${remote}: ${reason}${why}`, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.remote = remote;
  }
}

// ---- public types ---------------------------------------------------------------------

/** Structural subset of pino's logger, so host/ does not depend on core/log. */
export interface OvsdbLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface OvsdbClientOptions {
  /** `unix:/path/db.sock` or `tcp:host:port` (`tcp:[::1]:6640` for IPv6). */
  socket: string;
  log?: OvsdbLog;
  /** Per-request reply timeout, and the connect timeout; default 30 s. */
  timeoutMs?: number;
  /** Reconnect with exponential backoff after connection loss; off by default. */
  reconnect?: { initialMs: number; maxMs: number };
}

export interface ReconnectedEvent {
  /** monitorId → the fresh initial state of that monitor. */
  monitors: Record<string, TableUpdates>;
}

export interface CallOptions {
  timeoutMs?: number;
}

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

// ---- internal state -------------------------------------------------------------------

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

type Phase = 'connecting' | 'syncing' | 'open' | 'down' | 'closed';

interface State {
  remote: string;
  connectOpts: net.NetConnectOpts;
  log: OvsdbLog | undefined;
  timeoutMs: number;
  reconnect: { initialMs: number; maxMs: number } | undefined;
  phase: Phase;
  sock: net.Socket | null;
  nextId: number;
  pending: Map<number, Pending>;
  monitors: Map<string, { db: string; requests: MonitorRequests }>;
  updateCbs: Map<string, Set<(u: TableUpdates) => void>>;
  reconnectedCbs: Set<(ev: ReconnectedEvent) => void>;
  disconnectedCbs: Set<(e: OvsdbConnectionError) => void>;
  reconnectTimer: NodeJS.Timeout | null;
}

interface RpcMessage {
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}

export function parseRemote(remote: string): net.NetConnectOpts {
  if (remote.startsWith('unix:')) return { path: remote.slice(5) };
  const m = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(remote);
  if (!m) throw new TypeError(`ovsdb remote must be unix:PATH or tcp:HOST:PORT, got ${remote}`);
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

// ---- wire -----------------------------------------------------------------------------

function send(st: State, msg: object): void {
  st.sock?.write(JSON.stringify(msg));
}

/** Sends a request; `internal` requests may run while re-syncing after a reconnect. */
function request(
  st: State,
  method: string,
  params: unknown[],
  timeoutMs = st.timeoutMs,
  internal = false,
): Promise<unknown> {
  const usable = st.phase === 'open' || (internal && st.phase === 'syncing');
  if (!usable || !st.sock) {
    const reason = st.phase === 'closed' ? 'closed' : 'not-connected';
    return Promise.reject(new OvsdbConnectionError(reason, st.remote));
  }
  const id = st.nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      st.pending.delete(id);
      reject(new OvsdbTimeoutError(method, timeoutMs));
    }, timeoutMs);
    st.pending.set(id, { method, resolve, reject, timer });
    send(st, { method, params, id });
  });
}

function rpcError(method: string, error: unknown): OvsdbError {
  if (error !== null && typeof error === 'object') {
    const e = error as { error?: unknown; details?: unknown };
    const details = typeof e.details === 'string' ? e.details : undefined;
    return new OvsdbError(method, null, String(e.error ?? JSON.stringify(error)), details);
  }
  return new OvsdbError(method, null, String(error));
}

function onReply(st: State, msg: RpcMessage): void {
  const p = typeof msg.id === 'number' ? st.pending.get(msg.id) : undefined;
  if (!p) {
    st.log?.debug({ remote: st.remote, id: msg.id }, 'ovsdb reply for no pending request');
    return;
  }
  st.pending.delete(msg.id as number);
  clearTimeout(p.timer);
  if (msg.error !== null && msg.error !== undefined) p.reject(rpcError(p.method, msg.error));
  else p.resolve(msg.result);
}

function onServerRequest(st: State, msg: RpcMessage): void {
  const isNotification = msg.id === null || msg.id === undefined;
  if (msg.method === 'echo' && !isNotification) {
    st.log?.debug({ remote: st.remote }, 'ovsdb answered server echo');
    send(st, { id: msg.id, result: msg.params ?? [], error: null });
  } else if (msg.method === 'update' && Array.isArray(msg.params)) {
    deliverUpdate(st, String(msg.params[0]), msg.params[1] as TableUpdates);
  } else if (!isNotification) {
    send(st, { id: msg.id, result: null, error: `unknown method ${String(msg.method)}` });
  } else {
    st.log?.debug({ remote: st.remote, method: msg.method }, 'ovsdb notification ignored');
  }
}

/** Calls every callback; one that throws is logged and does not stop the others. */
function emit<T>(st: State, cbs: Iterable<(arg: T) => void>, arg: T): void {
  for (const cb of cbs) {
    try {
      cb(arg);
    } catch (e) {
      st.log?.warn({ remote: st.remote, err: e }, 'ovsdb callback threw');
    }
  }
}

function deliverUpdate(st: State, monitorId: string, updates: TableUpdates): void {
  emit(st, st.updateCbs.get(monitorId) ?? [], updates);
}

function onData(st: State, sock: net.Socket, splitter: JsonSplitter, chunk: string): void {
  try {
    for (const text of splitter.push(chunk)) {
      if (st.sock !== sock) return;
      const msg = JSON.parse(text) as RpcMessage;
      if (msg.method !== undefined) onServerRequest(st, msg);
      else onReply(st, msg);
    }
  } catch (e) {
    const err = e instanceof OvsdbProtocolError ? e : new OvsdbProtocolError(String(e));
    st.log?.warn({ remote: st.remote, err }, 'ovsdb protocol error, dropping connection');
    sock.destroy(err);
  }
}

// ---- connection lifecycle -------------------------------------------------------------

function openSocket(st: State): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(st.connectOpts);
    const fail = (e: Error) => {
      sock.destroy();
      reject(new OvsdbConnectionError('connect-failed', st.remote, e));
    };
    const timer = setTimeout(() => fail(new Error('connect timeout')), st.timeoutMs);
    sock.once('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
  });
}

function attach(st: State, sock: net.Socket): void {
  const splitter = createJsonSplitter();
  let lastError: Error | undefined;
  st.sock = sock;
  sock.setEncoding('utf8');
  sock.setNoDelay(true);
  sock.on('data', (chunk: string) => onData(st, sock, splitter, chunk));
  sock.on('error', (e) => {
    lastError = e;
  });
  sock.on('close', () => onClose(st, sock, lastError));
}

function rejectAll(st: State, err: OvsdbConnectionError): void {
  const pending = [...st.pending.values()];
  st.pending.clear();
  for (const p of pending) {
    clearTimeout(p.timer);
    p.reject(err);
  }
}

function onClose(st: State, sock: net.Socket, cause: Error | undefined): void {
  if (st.sock !== sock) return;
  st.sock = null;
  const wasOpen = st.phase === 'open';
  const reason = st.phase === 'closed' ? 'closed' : 'lost';
  const err = new OvsdbConnectionError(reason, st.remote, cause);
  rejectAll(st, err);
  if (!wasOpen) return; // closed by us, or a reconnect attempt that handles its own failure
  st.phase = 'down';
  st.log?.warn({ remote: st.remote, err }, 'ovsdb connection lost');
  emit(st, st.disconnectedCbs, err);
  if (st.reconnect) scheduleReconnect(st, st.reconnect.initialMs);
}

function scheduleReconnect(st: State, delayMs: number): void {
  if (st.phase === 'closed' || !st.reconnect) return;
  st.reconnectTimer = setTimeout(() => {
    st.reconnectTimer = null;
    void reconnectAttempt(st, delayMs);
  }, delayMs);
}

/** Reads the phase without TypeScript's narrowing (it changes across awaits). */
const phaseOf = (st: State): Phase => st.phase;

async function reconnectAttempt(st: State, delayMs: number): Promise<void> {
  if (phaseOf(st) === 'closed') return;
  st.phase = 'connecting';
  let monitors: Record<string, TableUpdates>;
  try {
    const sock = await openSocket(st);
    if (phaseOf(st) === 'closed') {
      sock.destroy();
      return;
    }
    attach(st, sock);
    st.phase = 'syncing';
    monitors = await resubscribe(st);
    if (phaseOf(st) !== 'syncing' || st.sock !== sock) throw new Error('connection lost');
  } catch (e) {
    const sock = st.sock;
    st.sock = null;
    sock?.destroy();
    if (phaseOf(st) === 'closed') return;
    st.phase = 'down';
    const next = Math.min(delayMs * 2, st.reconnect?.maxMs ?? delayMs);
    st.log?.debug({ remote: st.remote, err: e, retryMs: next }, 'ovsdb reconnect failed');
    scheduleReconnect(st, next);
    return;
  }
  st.phase = 'open';
  st.log?.info({ remote: st.remote, monitors: Object.keys(monitors) }, 'ovsdb reconnected');
  emit(st, st.reconnectedCbs, { monitors });
}

async function resubscribe(st: State): Promise<Record<string, TableUpdates>> {
  const out: Record<string, TableUpdates> = {};
  for (const [monitorId, m] of st.monitors) {
    const params = [m.db, monitorId, m.requests];
    out[monitorId] = (await request(st, 'monitor', params, st.timeoutMs, true)) as TableUpdates;
  }
  return out;
}

async function closeClient(st: State): Promise<void> {
  if (st.phase === 'closed') return;
  st.phase = 'closed';
  if (st.reconnectTimer) clearTimeout(st.reconnectTimer);
  st.reconnectTimer = null;
  const sock = st.sock;
  rejectAll(st, new OvsdbConnectionError('closed', st.remote));
  if (!sock || sock.destroyed) return;
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
    sock.destroy();
  });
}

// ---- API ------------------------------------------------------------------------------

async function transact(
  st: State,
  db: string,
  ops: OvsdbOperation[],
  opts?: CallOptions,
): Promise<OvsdbOpResult[]> {
  const results = (await request(st, 'transact', [db, ...ops], opts?.timeoutMs)) as
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
  const initial = await request(st, 'monitor', [db, monitorId, requests], opts?.timeoutMs);
  st.monitors.set(monitorId, { db, requests });
  return initial as TableUpdates;
}

async function monitorCancel(st: State, monitorId: string): Promise<void> {
  st.monitors.delete(monitorId);
  await request(st, 'monitor_cancel', [monitorId]);
}

function subscribe<T>(cbs: Set<T>, cb: T): () => void {
  cbs.add(cb);
  return () => {
    cbs.delete(cb);
  };
}

function onUpdate(st: State, monitorId: string, cb: (u: TableUpdates) => void): () => void {
  let cbs = st.updateCbs.get(monitorId);
  if (!cbs) {
    cbs = new Set();
    st.updateCbs.set(monitorId, cbs);
  }
  return subscribe(cbs, cb);
}

async function echo(st: State, opts?: CallOptions): Promise<number> {
  const t0 = performance.now();
  await request(st, 'echo', ['kumo'], opts?.timeoutMs);
  return performance.now() - t0;
}

function newState(opts: OvsdbClientOptions): State {
  return {
    remote: opts.socket,
    connectOpts: parseRemote(opts.socket),
    log: opts.log,
    timeoutMs: opts.timeoutMs ?? 30_000,
    reconnect: opts.reconnect,
    phase: 'connecting',
    sock: null,
    nextId: 1,
    pending: new Map(),
    monitors: new Map(),
    updateCbs: new Map(),
    reconnectedCbs: new Set(),
    disconnectedCbs: new Set(),
    reconnectTimer: null,
  };
}

/** Connects (the first connection must succeed, reconnect or not) and returns the client. */
export async function createOvsdbClient(opts: OvsdbClientOptions): Promise<OvsdbClient> {
  const st = newState(opts);
  attach(st, await openSocket(st));
  st.phase = 'open';
  return {
    transact: (db, ops, o) => transact(st, db, ops, o),
    monitor: (db, id, requests, o) => monitor(st, db, id, requests, o),
    monitorCancel: (id) => monitorCancel(st, id),
    onUpdate: (id, cb) => onUpdate(st, id, cb),
    onReconnected: (cb) => subscribe(st.reconnectedCbs, cb),
    onDisconnected: (cb) => subscribe(st.disconnectedCbs, cb),
    echo: (o) => echo(st, o),
    listDbs: async () => (await request(st, 'list_dbs', [])) as string[],
    getSchema: async (db) => (await request(st, 'get_schema', [db])) as DbSchema,
    isConnected: () => st.phase === 'open',
    close: () => closeClient(st),
  };
}
