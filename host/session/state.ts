/**
 * The socket session's state and the small helpers every part of it uses: logging with
 * the protocol's context, callback delivery, and the connection errors. Internal to
 * host/session.
 *
 * Invariant: `sock` is the one live socket or null, and `pending` holds exactly the calls
 * written to it that have not settled; whoever replaces or drops `sock` settles them.
 */
import type net from 'node:net';
import type { ConnectionReason } from './errors.ts';
import type { SessionLog, SessionOptions } from './types.ts';

export interface Pending {
  method: string;
  decode(frame: unknown): unknown;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** idle: created, open() not called yet; syncing: connected, handshake running. */
export type Phase = 'idle' | 'connecting' | 'syncing' | 'open' | 'down' | 'closed';

export type Opts = SessionOptions<unknown, unknown, unknown, Error>;

export interface State {
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
export const phaseOf = (st: State): Phase => st.phase;

export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function logAt(st: State, level: keyof SessionLog, fields: object, msg: string): void {
  st.o.log?.[level]({ ...st.o.context, ...fields }, `${st.o.name} ${msg}`);
}

export function emit<T>(st: State, cbs: Iterable<(arg: T) => void>, arg: T): void {
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

export function connectionError(st: State, reason: ConnectionReason, cause?: unknown): Error {
  return st.o.errors.connection(reason, cause);
}

export const downError = (st: State): Error =>
  connectionError(st, st.phase === 'closed' ? 'closed' : 'not-connected');
