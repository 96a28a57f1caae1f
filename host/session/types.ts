/**
 * The socket session's contract with a protocol: what a protocol supplies (framing, its
 * errors, a handshake, event and drop hooks, keepalive ping) and what it gets back (the
 * session's calls, sends, state and listeners). Types only.
 *
 * Invariant: a protocol knows nothing of sockets, ids or timers beyond this contract;
 * the session knows nothing of the protocol's bytes beyond `Framing`.
 */
import type net from 'node:net';
import type { SessionErrors } from './errors.ts';

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
