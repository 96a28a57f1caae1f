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
 * - The first connection (`open()`) must succeed; later losses reconnect with exponential
 *   backoff when `reconnect` is set. close() stops reconnecting and keepalive and ends
 *   the socket.
 */
import net from 'node:net';
import { callFn, detach, onData } from './calls.ts';
import {
  connectionError,
  downError,
  emit,
  listen,
  logAt,
  type Opts,
  phaseOf,
  type State,
} from './state.ts';
import type { Call, Keepalive, Session, SessionOptions } from './types.ts';

export * from './errors.ts';
export { listen } from './state.ts';
export * from './types.ts';

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
  if (st.phase !== 'idle') throw new Error(`${st.o.name}: open() called twice`);
  st.phase = 'connecting';
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
    phase: 'idle',
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
