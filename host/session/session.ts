/**
 * One client session over a stream socket (unix or TCP), shared by the host/ clients
 * that speak a request/reply protocol: OVSDB's JSON-RPC and libvirt's XDR RPC. The
 * protocol supplies its framing (encode a request with an id, split bytes into frames,
 * classify a frame as a reply, an error reply or an event) and a handshake; the session
 * owns the socket, the pending calls and their timeouts, keepalive, reconnect with
 * backoff, and the typed errors. One copy of this logic means one set of bugs to fix.
 *
 * Invariants:
 * - Every call settles exactly once: by its reply (decoded by the caller's decoder, or
 *   the protocol's error), by its timeout (an error naming the method), or by connection
 *   loss / close. A reply that arrives after its call timed out is dropped; a reply that
 *   does not decode rejects that call with a protocol error and the connection stays up.
 * - A call made while the connection is not open rejects at once ('not-connected', or
 *   'closed' after close()); nothing is queued behind the caller's back. Only the
 *   handshake's own calls run before a connection opens.
 * - A connection opens only once the handshake succeeded on it. After a reconnect the
 *   handshake (which re-establishes the protocol's subscriptions) runs first, then
 *   `reconnected` fires with its result; events in between are lost, so listeners must
 *   treat it as a full resync.
 * - Frames from a socket that has been replaced are never delivered; undecodable bytes
 *   drop the connection (a stream cannot be resynchronised).
 * - The first connection (`open()`) must succeed; later losses reconnect with exponential backoff
 *   when `reconnect` is set. close() stops reconnecting and keepalive and ends the socket.
 */
import net from 'node:net';
import type { ConnectionReason, SessionErrors } from './errors.ts';

export * from './errors.ts';

/** Structural subset of pino's logger, so host/ does not depend on core/log. */
export interface SessionLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** What a frame is: the reply (or error reply) to call `id`, or anything unsolicited. */
export type FrameClass =
  | { kind: 'reply'; id: number }
  | { kind: 'error'; id: number }
  | { kind: 'event' };

/** The protocol's wire format. `F` is a decoded frame, `Req` what a call sends. */
export interface Framing<Req, F> {
  /** The bytes of one request carrying `id`. May throw (the call then rejects). */
  encode(req: Req, id: number): Uint8Array | string;
  /** A fresh decoder per connection: bytes in, complete frames out; throws on garbage. */
  decoder(): (chunk: Buffer) => F[];
  classify(frame: F): FrameClass;
  /** The error an error reply to `method` stands for. */
  replyError(frame: F, method: string): Error;
}

export interface CallOptions {
  timeoutMs?: number;
}

export type Call<Req, F> = <T>(
  method: string,
  req: Req,
  decode: (frame: F) => T,
  opts?: CallOptions,
) => Promise<T>;

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export interface Keepalive {
  /** Idle time before a ping; the connection drops after `count` unanswered pings. */
  intervalMs: number;
  count: number;
  /** Sends the protocol's ping (libvirt's keepalive PING, OVSDB's echo). */
  ping(): void;
}

export interface SessionOptions<Req, F, R, CE extends Error> {
  /** The protocol's name, first word of every log message: `ovsdb`, `libvirt`. */
  name: string;
  connect: net.NetConnectOpts;
  /** Fields every log line carries (the remote, the URI). */
  context: Record<string, unknown>;
  log?: SessionLog | undefined;
  /** Default per-call timeout, and the connect timeout. */
  timeoutMs: number;
  framing: Framing<Req, F>;
  errors: SessionErrors<CE>;
  /**
   * Runs on every new connection before it opens, with a `call` that works while the
   * connection is still syncing: authenticate, open, re-establish subscriptions. Its
   * result is what `reconnected` listeners get.
   */
  handshake(call: Call<Req, F>): Promise<R>;
  /** An unsolicited frame (notification, event, server request). Throwing drops the line. */
  onEvent(frame: F): void;
  /** Every socket that goes away, open or not: server-side registrations died with it. */
  onDrop?: () => void;
  reconnect?: Backoff | undefined;
  keepalive?: Keepalive | undefined;
}

export interface Session<Req, F, R, CE extends Error> {
  /** Connects and runs the handshake; both must succeed, else the session is closed. */
  open(): Promise<void>;
  call: Call<Req, F>;
  /** Writes a frame that is not a call (keepalive answer, echo reply); dropped while down. */
  send(data: Uint8Array | string): void;
  isOpen(): boolean;
  /** The error a call gets right now because the connection is not open. */
  downError(): CE;
  onReconnected(cb: (r: R) => void): () => void;
  onDisconnected(cb: (err: CE) => void): () => void;
  /** Calls every callback; one that throws is logged and does not stop the others. */
  emit<T>(cbs: Iterable<(arg: T) => void>, arg: T): void;
  /** Rejects pending calls with reason 'closed', stops reconnecting, ends the socket. */
  close(): Promise<void>;
}

// ---- state ------------------------------------------------------------------------------

interface Pending {
  method: string;
  decode(frame: unknown): unknown;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

type Phase = 'connecting' | 'syncing' | 'open' | 'down' | 'closed';

type Opts = SessionOptions<unknown, unknown, unknown, Error>;

interface State {
  o: Opts;
  phase: Phase;
  sock: net.Socket | null;
  nextId: number;
  pending: Map<number, Pending>;
  lastRx: number;
  missed: number;
  reconnectTimer: NodeJS.Timeout | null;
  keepaliveTimer: NodeJS.Timeout | null;
  reconnectedCbs: Set<(r: unknown) => void>;
  disconnectedCbs: Set<(e: Error) => void>;
}

/** Reads the phase without TypeScript's narrowing (it changes across awaits). */
const phaseOf = (st: State): Phase => st.phase;

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function logAt(st: State, level: keyof SessionLog, fields: object, msg: string): void {
  st.o.log?.[level]({ ...st.o.context, ...fields }, `${st.o.name} ${msg}`);
}

function emit<T>(st: State, cbs: Iterable<(arg: T) => void>, arg: T): void {
  for (const cb of cbs) {
    try {
      cb(arg);
    } catch (e) {
      logAt(st, 'warn', { err: e }, 'callback threw');
    }
  }
}

/** Adds a callback to a set; returns the function that removes it. */
export function listen<T>(cbs: Set<T>, cb: T): () => void {
  cbs.add(cb);
  return () => {
    cbs.delete(cb);
  };
}

function connectionError(st: State, reason: ConnectionReason, cause?: unknown): Error {
  return st.o.errors.connection(reason, cause);
}

const downError = (st: State): Error =>
  connectionError(st, st.phase === 'closed' ? 'closed' : 'not-connected');

// ---- calls and frames -------------------------------------------------------------------

function call(
  st: State,
  method: string,
  req: unknown,
  decode: (frame: unknown) => unknown,
  timeoutMs: number,
  duringSync: boolean,
): Promise<unknown> {
  const sock = st.sock;
  const usable = st.phase === 'open' || (duringSync && st.phase === 'syncing');
  if (!usable || !sock) return Promise.reject(downError(st));
  const id = st.nextId;
  st.nextId = (st.nextId + 1) >>> 0;
  let bytes: Uint8Array | string;
  try {
    bytes = st.o.framing.encode(req, id);
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      st.pending.delete(id);
      reject(st.o.errors.timeout(method, timeoutMs));
    }, timeoutMs);
    st.pending.set(id, { method, decode, resolve, reject, timer });
    sock.write(bytes);
  });
}

function callFn(st: State, duringSync: boolean): Call<unknown, unknown> {
  return <T>(method: string, req: unknown, decode: (f: unknown) => T, opts?: CallOptions) =>
    call(st, method, req, decode, opts?.timeoutMs ?? st.o.timeoutMs, duringSync) as Promise<T>;
}

function onFrame(st: State, frame: unknown): void {
  const c = st.o.framing.classify(frame);
  if (c.kind === 'event') {
    st.o.onEvent(frame);
    return;
  }
  const p = st.pending.get(c.id);
  if (!p) {
    logAt(st, 'debug', { id: c.id }, 'reply for no pending call');
    return;
  }
  st.pending.delete(c.id);
  clearTimeout(p.timer);
  try {
    if (c.kind === 'error') p.reject(st.o.framing.replyError(frame, p.method));
    else p.resolve(p.decode(frame));
  } catch (e) {
    p.reject(st.o.errors.protocol(`${p.method}: bad reply: ${messageOf(e)}`));
  }
}

function onData(st: State, sock: net.Socket, decode: (b: Buffer) => unknown[], chunk: Buffer) {
  st.lastRx = Date.now();
  st.missed = 0;
  try {
    for (const frame of decode(chunk)) {
      if (st.sock !== sock) return;
      onFrame(st, frame);
    }
  } catch (e) {
    const err = st.o.errors.protocol(messageOf(e));
    logAt(st, 'warn', { err }, 'protocol error, dropping connection');
    sock.destroy(err);
  }
}

// ---- connection lifecycle ---------------------------------------------------------------

function openSocket(st: State): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(st.o.connect);
    const fail = (e: Error) => {
      sock.destroy();
      reject(connectionError(st, 'connect-failed', e));
    };
    const timer = setTimeout(() => fail(new Error('connect timeout')), st.o.timeoutMs);
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
  const decode = st.o.framing.decoder();
  let lastError: Error | undefined;
  st.sock = sock;
  st.lastRx = Date.now();
  st.missed = 0;
  sock.setNoDelay(true);
  sock.on('data', (chunk: Buffer) => onData(st, sock, decode, chunk));
  sock.on('error', (e) => {
    lastError = e;
  });
  sock.on('close', () => onClose(st, sock, lastError));
}

/** Forgets the current socket: its pending calls reject with `err`, the protocol hears. */
function detach(st: State, err: Error): void {
  st.sock = null;
  const pending = [...st.pending.values()];
  st.pending.clear();
  for (const p of pending) {
    clearTimeout(p.timer);
    p.reject(err);
  }
  st.o.onDrop?.();
}

function onClose(st: State, sock: net.Socket, cause: Error | undefined): void {
  if (st.sock !== sock) return;
  const wasOpen = st.phase === 'open';
  const err = connectionError(st, st.phase === 'closed' ? 'closed' : 'lost', cause);
  detach(st, err);
  if (!wasOpen) return; // closed by us, or a connection attempt that handles its own failure
  st.phase = 'down';
  logAt(st, 'warn', { err }, 'connection lost');
  emit(st, st.disconnectedCbs, err);
  if (st.o.reconnect) scheduleReconnect(st, st.o.reconnect.initialMs);
}

/** A socket, then the handshake on it; the connection is open when this resolves. */
async function establish(st: State): Promise<unknown> {
  const sock = await openSocket(st);
  if (phaseOf(st) === 'closed') {
    sock.destroy();
    throw downError(st);
  }
  attach(st, sock);
  st.phase = 'syncing';
  const result = await st.o.handshake(callFn(st, true));
  if (phaseOf(st) !== 'syncing' || st.sock !== sock) throw connectionError(st, 'lost');
  st.phase = 'open';
  return result;
}

/** After a failed attempt: drop its socket, if any, and go back to `phase`. */
function abandon(st: State, phase: 'down' | 'closed', err: unknown): void {
  const sock = st.sock;
  if (sock) detach(st, connectionError(st, 'lost', err));
  sock?.destroy();
  st.phase = phase;
}

function scheduleReconnect(st: State, delayMs: number): void {
  if (st.phase === 'closed' || !st.o.reconnect) return;
  st.reconnectTimer = setTimeout(() => {
    st.reconnectTimer = null;
    void reconnectAttempt(st, delayMs);
  }, delayMs);
}

async function reconnectAttempt(st: State, delayMs: number): Promise<void> {
  if (phaseOf(st) === 'closed') return;
  st.phase = 'connecting';
  let result: unknown;
  try {
    result = await establish(st);
  } catch (e) {
    if (phaseOf(st) === 'closed') return;
    abandon(st, 'down', e);
    const next = Math.min(delayMs * 2, st.o.reconnect?.maxMs ?? delayMs);
    logAt(st, 'debug', { err: e, retryMs: next }, 'reconnect failed');
    scheduleReconnect(st, next);
    return;
  }
  logAt(st, 'info', {}, 'reconnected');
  emit(st, st.reconnectedCbs, result);
}

function keepaliveTick(st: State, ka: Keepalive): void {
  const sock = st.sock;
  if (st.phase !== 'open' || !sock) return;
  if (Date.now() - st.lastRx < ka.intervalMs * (st.missed + 1)) return;
  if (st.missed >= ka.count) {
    logAt(st, 'warn', { missed: st.missed }, 'keepalive timed out');
    sock.destroy(new Error(`no keepalive reply in ${ka.count} intervals`));
    return;
  }
  st.missed++;
  ka.ping();
}

async function close(st: State): Promise<void> {
  if (st.phase === 'closed') return;
  st.phase = 'closed';
  if (st.reconnectTimer) clearTimeout(st.reconnectTimer);
  if (st.keepaliveTimer) clearInterval(st.keepaliveTimer);
  st.reconnectTimer = null;
  st.keepaliveTimer = null;
  const sock = st.sock;
  if (sock) detach(st, connectionError(st, 'closed'));
  if (!sock || sock.destroyed) return;
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
    sock.destroy();
  });
}

function startKeepalive(st: State): void {
  const ka = st.o.keepalive;
  if (!ka) return;
  const every = Math.max(10, Math.floor(ka.intervalMs / 2));
  st.keepaliveTimer = setInterval(() => keepaliveTick(st, ka), every);
  st.keepaliveTimer.unref();
}

async function open(st: State): Promise<void> {
  if (st.phase !== 'connecting' || st.sock) throw new Error(`${st.o.name}: open() called twice`);
  try {
    await establish(st);
  } catch (e) {
    abandon(st, 'closed', e);
    throw e;
  }
  startKeepalive(st);
}

/**
 * A session, not yet connected: call `open()` once. Creating it first lets the protocol's
 * hooks close over the session they run in.
 */
export function createSession<Req, F, R, CE extends Error>(
  opts: SessionOptions<Req, F, R, CE>,
): Session<Req, F, R, CE> {
  const st: State = {
    o: opts as unknown as Opts,
    phase: 'connecting',
    sock: null,
    nextId: 1,
    pending: new Map(),
    lastRx: 0,
    missed: 0,
    reconnectTimer: null,
    keepaliveTimer: null,
    reconnectedCbs: new Set(),
    disconnectedCbs: new Set(),
  };
  return {
    open: () => open(st),
    call: callFn(st, false) as Call<Req, F>,
    send: (data) => {
      if (st.phase !== 'closed') st.sock?.write(data);
    },
    isOpen: () => st.phase === 'open',
    downError: () => downError(st) as CE,
    onReconnected: (cb) => listen(st.reconnectedCbs, cb as (r: unknown) => void),
    onDisconnected: (cb) => listen(st.disconnectedCbs, cb as (e: Error) => void),
    emit: (cbs, arg) => emit(st, cbs, arg),
    close: () => close(st),
  };
}
