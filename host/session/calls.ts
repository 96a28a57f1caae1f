/**
 * The pending-call table: ids, per-call timeouts, matching replies to calls, and turning
 * a socket's bytes into frames for it. Internal to host/session.
 *
 * Invariant: a call is in `pending` from the moment it is written until it settles, and
 * settles exactly once (reply, error reply, undecodable reply, timeout or `detach`).
 */
import type net from 'node:net';
import { downError, logAt, messageOf, type State } from './state.ts';
import type { Call, CallOptions } from './types.ts';

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

export function callFn(st: State, duringSync: boolean): Call<unknown, unknown> {
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

export function onData(
  st: State,
  sock: net.Socket,
  decode: (b: Buffer) => unknown[],
  chunk: Buffer,
) {
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

/** Forgets the current socket: its pending calls reject with `err`, the protocol hears. */
export function detach(st: State, err: Error): void {
  st.sock = null;
  const pending = [...st.pending.values()];
  st.pending.clear();
  for (const p of pending) {
    clearTimeout(p.timer);
    p.reject(err);
  }
  st.o.onDrop?.();
}
