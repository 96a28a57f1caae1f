/**
 * Our own client for libvirtd's remote protocol (XDR over the unix socket
 * `/var/run/libvirt/libvirt-sock`), no dependency: one persistent connection that opens a
 * URI (`qemu:///system`, `test:///default`), serial-matched calls with timeouts, domain
 * procedures, lifecycle events, keepalive both ways, and optional reconnect. The
 * connection itself is the shared socket session (host/session); this module is libvirt's
 * handshake and the assembly of wire.ts (framing), events.ts (events, keepalive) and
 * procedures.ts (the procedure table).
 *
 * Invariants:
 * - Every call settles exactly once: by its REPLY (ret, or `LibvirtError` carrying
 *   libvirt's own numeric code/domain/level), by its timeout (`LibvirtTimeoutError`), or
 *   by connection loss / close (`LibvirtConnectionError`). A reply that arrives after its
 *   call timed out is dropped. A reply whose payload does not decode rejects that call
 *   with `LibvirtProtocolError`; the connection stays up.
 * - A call made while the connection is down rejects at once with reason 'not-connected'
 *   ('closed' after close()); nothing is queued behind the caller's back.
 * - The connection is usable only after AUTH_LIST (+ AUTH_POLKIT when the daemon asks
 *   for it) and REMOTE_PROC_CONNECT_OPEN succeeded on it. We then ask for
 *   CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE), which makes libvirtd start sending
 *   keepalive PINGs; server PINGs are always answered with a PONG. Our own PINGs (option
 *   `keepalive`) go out only when the line has been idle for `intervalMs`, and after
 *   `count` unanswered PINGs the connection is treated as lost.
 * - After a reconnect (libvirtd restarted) the URI is re-opened and every lifecycle
 *   callback that was registered (and not deregistered) is re-registered before
 *   `reconnected` fires; events in between are lost, so callers must treat `reconnected`
 *   as a full resync.
 * - The first connection must succeed (reconnect or not); `close()` sends CONNECT_CLOSE
 *   (best effort, short timeout), stops reconnecting and ends the socket.
 */
import { createSession, type Session } from '../session/session.ts';
import { LibvirtConnectionError, LibvirtProtocolError, LibvirtTimeoutError } from './errors.ts';
import {
  createEvents,
  dropServerIds,
  type Events,
  onUnsolicited,
  ping,
  registerLifecycle,
  reregisterAll,
} from './events.ts';
import { none, type ProcCall, procedures } from './procedures.ts';
import {
  KeepaliveProc,
  type Packet,
  REMOTE_AUTH_TYPE_LIST_MAX,
  REMOTE_STRING_MAX,
  RemoteAuthType,
  RemoteProc,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
} from './protocol.ts';
import type {
  ArgsWriter,
  CallOptions,
  LibvirtClient,
  LibvirtClientOptions,
  ReconnectedEvent,
  RetReader,
} from './types.ts';
import {
  keepalivePacket,
  type LibvirtCall,
  libvirtFraming,
  type RemoteCall,
  remoteCall,
} from './wire.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

export * from './enums.ts';
export * from './errors.ts';
export * from './protocol.ts';
export * from './types.ts';
export { XdrError, XdrReader, XdrWriter } from './xdr.ts';

export const DEFAULT_LIBVIRT_SOCKET = '/var/run/libvirt/libvirt-sock';

type LibvirtSession = Session<RemoteCall, Packet, ReconnectedEvent, LibvirtConnectionError>;

/**
 * AUTH_LIST first: libvirtd's unix socket defaults to polkit auth, which it waives for
 * root (and the daemon's own uid) only when the client asks for the auth list. Other
 * callers then try AUTH_POLKIT; SASL is not supported here.
 */
async function authenticate(call: LibvirtCall): Promise<void> {
  const readTypes = (r: XdrReader) => r.array((x) => x.int(), REMOTE_AUTH_TYPE_LIST_MAX);
  const types = await remoteCall(call, RemoteProc.REMOTE_PROC_AUTH_LIST, undefined, readTypes);
  if (types.length === 0 || types.includes(RemoteAuthType.NONE)) return;
  if (types.includes(RemoteAuthType.POLKIT)) {
    await remoteCall(call, RemoteProc.REMOTE_PROC_AUTH_POLKIT, undefined, (r) => r.int());
    return;
  }
  throw new LibvirtProtocolError(`libvirtd wants auth ${types.join(',')}: only polkit/none`);
}

/** Auth, CONNECT_OPEN, keepalive feature, then re-register every lifecycle callback. */
async function handshake(
  opts: LibvirtClientOptions,
  events: Events,
  call: LibvirtCall,
): Promise<ReconnectedEvent> {
  await authenticate(call);
  const openArgs = (w: XdrWriter) =>
    w.optional(opts.uri, (x, s) => x.string(s, REMOTE_STRING_MAX)).uint(0);
  await remoteCall(call, RemoteProc.REMOTE_PROC_CONNECT_OPEN, openArgs, none);
  const supported = await remoteCall(
    call,
    RemoteProc.REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
    (w) => w.int(VIR_DRV_FEATURE_PROGRAM_KEEPALIVE),
    (r) => r.int(),
  );
  opts.log?.debug({ uri: opts.uri, keepalive: supported }, 'libvirt open');
  return { callbacks: await reregisterAll(events, call) };
}

async function close(s: LibvirtSession, opts: LibvirtClientOptions): Promise<void> {
  if (s.isOpen()) {
    const proc = RemoteProc.REMOTE_PROC_CONNECT_CLOSE;
    try {
      await remoteCall(s.call, proc, undefined, none, { timeoutMs: 2000 });
    } catch (e) {
      opts.log?.debug({ uri: opts.uri, err: e }, 'libvirt CONNECT_CLOSE failed');
    }
  }
  await s.close();
}

function openSession(opts: LibvirtClientOptions, events: Events): LibvirtSession {
  const socket = opts.socket ?? DEFAULT_LIBVIRT_SOCKET;
  const ka = opts.keepalive;
  const s: LibvirtSession = createSession({
    name: 'libvirt',
    connect: { path: socket },
    context: { socket, uri: opts.uri },
    log: opts.log,
    timeoutMs: opts.timeoutMs ?? 30_000,
    framing: libvirtFraming,
    errors: {
      timeout: (procedure, ms) => new LibvirtTimeoutError(procedure, ms),
      connection: (reason, cause) => new LibvirtConnectionError(reason, socket, cause),
      protocol: (message) => new LibvirtProtocolError(message),
    },
    handshake: (call) => handshake(opts, events, call),
    onEvent: (pkt) => onUnsolicited(events, s, pkt),
    onDrop: () => dropServerIds(events),
    reconnect: opts.reconnect,
    keepalive: ka && { ...ka, ping: () => s.send(keepalivePacket(KeepaliveProc.PING)) },
  });
  return s;
}

/** Connects, opens the URI (both must succeed, reconnect or not) and returns the client. */
export async function createLibvirtClient(opts: LibvirtClientOptions): Promise<LibvirtClient> {
  const context = { socket: opts.socket ?? DEFAULT_LIBVIRT_SOCKET, uri: opts.uri };
  const events = createEvents(opts.log, context);
  const s = openSession(opts, events);
  await s.open();
  const call: ProcCall = (proc, args, ret, o) => remoteCall(s.call, proc, args, ret, o);
  return {
    uri: opts.uri,
    call: <T>(proc: number, args?: ArgsWriter, ret?: RetReader<T>, o?: CallOptions) =>
      call(proc, args, (ret ?? none) as RetReader<T>, o),
    ...procedures(call),
    registerLifecycle: (cb, o) => registerLifecycle(events, s, cb, o),
    ping: (o) => ping(events, s, o?.timeoutMs ?? opts.timeoutMs ?? 30_000),
    onReconnected: (cb) => s.onReconnected(cb),
    onDisconnected: (cb) => s.onDisconnected(cb),
    isConnected: () => s.isOpen(),
    serverPings: () => events.serverPings,
    close: () => close(s, opts),
  };
}
