/**
 * Our own client for libvirtd's remote protocol (XDR over the unix socket
 * `/var/run/libvirt/libvirt-sock`), no dependency: one persistent connection that opens a
 * URI (`qemu:///system`, `test:///default`), serial-matched calls with timeouts, domain
 * procedures, lifecycle events, keepalive both ways, and optional reconnect.
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
 *   for it) and REMOTE_PROC_CONNECT_OPEN succeeded on it. We then
 *   ask for CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE), which makes libvirtd start
 *   sending keepalive PINGs; server PINGs are always answered with a PONG. Our own PINGs
 *   (option `keepalive`) go out only when the line has been idle for `intervalMs`, and
 *   after `count` unanswered intervals the connection is treated as lost.
 * - Lifecycle callbacks are identified by our own stable id: libvirtd's callbackID
 *   changes on every (re)registration and never leaks out. The mapping is installed
 *   while the register reply is decoded, so an event in the same chunk is not lost.
 * - After a reconnect (libvirtd restarted) the URI is re-opened and every callback that
 *   was registered (and not deregistered) is re-registered before `reconnected` fires;
 *   events in between are lost, so callers must treat `reconnected` as a full resync.
 * - The first connection must succeed (reconnect or not); `close()` sends CONNECT_CLOSE
 *   (best effort, short timeout), stops reconnecting and ends the socket.
 */
import net from 'node:net';
import {
  createPacketSplitter,
  type Domain,
  DomainEventId,
  type DomainEventName,
  decodePacket,
  domainEventName,
  encodePacket,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  KeepaliveProc,
  MessageStatus,
  MessageType,
  type Packet,
  type PacketSplitter,
  procName,
  REMOTE_AUTH_TYPE_LIST_MAX,
  REMOTE_DOMAIN_LIST_MAX,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  REMOTE_STRING_MAX,
  RemoteAuthType,
  type RemoteError,
  RemoteProc,
  readDomain,
  readRemoteError,
  uuidToBytes,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  VIR_UUID_BUFLEN,
  writeDomain,
} from './protocol.ts';
import { XdrReader, XdrWriter } from './xdr.ts';

export * from './protocol.ts';
export { XdrError, XdrReader, XdrWriter } from './xdr.ts';

export const DEFAULT_LIBVIRT_SOCKET = '/var/run/libvirt/libvirt-sock';

// ---- errors ---------------------------------------------------------------------------

/** libvirtd said no. `code`, `domain` and `level` are libvirt's numeric enums, unchanged. */
export class LibvirtError extends Error {
  override name = 'LibvirtError';
  /** virErrorNumber, e.g. 42 = VIR_ERR_NO_DOMAIN (see `VirErrorNumber`). */
  readonly code: number;
  /** virErrorDomain: which part of libvirt raised it (e.g. 10 = VIR_FROM_DOM). */
  readonly domain: number;
  /** virErrorLevel: 1 warning, 2 error. */
  readonly level: number;
  /** The REMOTE_PROC_… name of the call that failed. */
  readonly procedure: string;
  readonly str1: string | null;
  readonly str2: string | null;
  readonly str3: string | null;
  readonly int1: number;
  readonly int2: number;
  constructor(procedure: string, e: RemoteError) {
    super(e.message ?? `libvirt error ${e.code}`);
    this.procedure = procedure;
    this.code = e.code;
    this.domain = e.domain;
    this.level = e.level;
    this.str1 = e.str1;
    this.str2 = e.str2;
    this.str3 = e.str3;
    this.int1 = e.int1;
    this.int2 = e.int2;
  }
}

export class LibvirtTimeoutError extends Error {
  override name = 'LibvirtTimeoutError';
  readonly procedure: string;
  readonly timeoutMs: number;
  constructor(procedure: string, timeoutMs: number) {
    super(`libvirt ${procedure}: no reply within ${timeoutMs} ms`);
    this.procedure = procedure;
    this.timeoutMs = timeoutMs;
  }
}

/** A packet or payload we could not make sense of. */
export class LibvirtProtocolError extends Error {
  override name = 'LibvirtProtocolError';
}

export type LibvirtConnectionReason = 'connect-failed' | 'lost' | 'closed' | 'not-connected';

export class LibvirtConnectionError extends Error {
  override name = 'LibvirtConnectionError';
  readonly reason: LibvirtConnectionReason;
  readonly socket: string;
  constructor(reason: LibvirtConnectionReason, socket: string, cause?: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super(`libvirt ${socket}: ${reason}${why}`, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.socket = socket;
  }
}

// ---- public types ---------------------------------------------------------------------

/** Structural subset of pino's logger, so host/ does not depend on core/log. */
export interface LibvirtLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LibvirtClientOptions {
  /** Path of libvirtd's read-write unix socket; default /var/run/libvirt/libvirt-sock. */
  socket?: string;
  /** The URI to open on the daemon: `qemu:///system`, `test:///default`, … */
  uri: string;
  log?: LibvirtLog;
  /** Per-call reply timeout, and the connect timeout; default 30 s. */
  timeoutMs?: number;
  /** Reconnect with exponential backoff after connection loss; off by default. */
  reconnect?: { initialMs: number; maxMs: number };
  /** Send our own PINGs when idle; drop the connection after `count` silent intervals. */
  keepalive?: { intervalMs: number; count: number };
}

export interface CallOptions {
  timeoutMs?: number;
}

/** remote_domain_get_info_ret */
export interface DomainInfo {
  /** virDomainState */
  state: number;
  maxMemKiB: number;
  memoryKiB: number;
  nrVirtCpu: number;
  /** CPU time used, in nanoseconds. */
  cpuTimeNs: bigint;
}

/** remote_domain_get_state_ret: virDomainState and its state-specific reason. */
export interface DomainStateInfo {
  state: number;
  reason: number;
}

export interface LifecycleEvent {
  /** Our stable id of the registration this event belongs to. */
  callbackId: number;
  domain: Domain;
  /** virDomainEventType (see `DomainEventType`). */
  event: number;
  eventName: DomainEventName | 'UNKNOWN';
  /** Event-specific virDomainEvent*DetailType. */
  detail: number;
}

export interface LifecycleRegistration {
  /** Our stable id (survives reconnects); events carry it as `callbackId`. */
  readonly id: number;
  deregister(): Promise<void>;
}

export interface ReconnectedEvent {
  /** Our ids of the lifecycle registrations that were re-established. */
  callbacks: number[];
}

export type ArgsWriter = (w: XdrWriter) => void;
export type RetReader<T> = (r: XdrReader) => T;

export interface LibvirtClient {
  readonly uri: string;
  /** Raw call of a remote program procedure (for procedures without a wrapper here). */
  call<T = void>(
    proc: number,
    args?: ArgsWriter,
    ret?: RetReader<T>,
    opts?: CallOptions,
  ): Promise<T>;
  getHostname(opts?: CallOptions): Promise<string>;
  /** Hypervisor version: major * 1,000,000 + minor * 1,000 + release. */
  getVersion(opts?: CallOptions): Promise<number>;
  /** libvirt (daemon) version, same encoding. */
  getLibVersion(opts?: CallOptions): Promise<number>;
  /** Driver name: `QEMU`, `TEST`, … */
  getType(opts?: CallOptions): Promise<string>;
  /** All domains (flags: `ListDomainsFlags`, 0 = all). */
  listAllDomains(flags?: number, opts?: CallOptions): Promise<Domain[]>;
  lookupByName(name: string, opts?: CallOptions): Promise<Domain>;
  lookupByUuid(uuid: string, opts?: CallOptions): Promise<Domain>;
  defineXml(xml: string, flags?: number, opts?: CallOptions): Promise<Domain>;
  undefine(dom: Domain, flags?: number, opts?: CallOptions): Promise<void>;
  /** Starts a defined domain; resolves with the handle carrying its new id. */
  create(dom: Domain, flags?: number, opts?: CallOptions): Promise<Domain>;
  destroy(dom: Domain, flags?: number, opts?: CallOptions): Promise<void>;
  shutdown(dom: Domain, flags?: number, opts?: CallOptions): Promise<void>;
  reboot(dom: Domain, flags?: number, opts?: CallOptions): Promise<void>;
  suspend(dom: Domain, opts?: CallOptions): Promise<void>;
  resume(dom: Domain, opts?: CallOptions): Promise<void>;
  /** Saves the memory state to libvirt's own file and stops the domain (flags: `DomainSaveFlags`). */
  managedSave(dom: Domain, flags?: number, opts?: CallOptions): Promise<void>;
  /** Whether a managed save image exists: `create` then restores from it. */
  hasManagedSaveImage(dom: Domain, opts?: CallOptions): Promise<boolean>;
  /** Deletes the managed save image (the next `create` boots afresh). */
  managedSaveRemove(dom: Domain, opts?: CallOptions): Promise<void>;
  getInfo(dom: Domain, opts?: CallOptions): Promise<DomainInfo>;
  getState(dom: Domain, opts?: CallOptions): Promise<DomainStateInfo>;
  getXmlDesc(dom: Domain, flags?: number, opts?: CallOptions): Promise<string>;
  /** flags: `DomainAffect` (CURRENT / LIVE / CONFIG). */
  attachDevice(dom: Domain, xml: string, flags?: number, opts?: CallOptions): Promise<void>;
  detachDevice(dom: Domain, xml: string, flags?: number, opts?: CallOptions): Promise<void>;
  /**
   * Registers for lifecycle events of one domain or (default) all. The callback is set
   * up before the call returns, so no event after the server-side registration is lost.
   */
  registerLifecycle(
    cb: (ev: LifecycleEvent) => void,
    opts?: { domain?: Domain } & CallOptions,
  ): Promise<LifecycleRegistration>;
  /** Sends a keepalive PING; resolves with the round-trip time in ms. */
  ping(opts?: CallOptions): Promise<number>;
  onReconnected(cb: (ev: ReconnectedEvent) => void): () => void;
  onDisconnected(cb: (err: LibvirtConnectionError) => void): () => void;
  isConnected(): boolean;
  /** Number of keepalive PINGs the server sent us (and we answered) on this client. */
  serverPings(): number;
  /** CONNECT_CLOSE (best effort), rejects pending calls with 'closed', ends the socket. */
  close(): Promise<void>;
}

// ---- internal state -------------------------------------------------------------------

interface Pending {
  procedure: string;
  read: RetReader<unknown>;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface LifecycleSub {
  id: number;
  domain: Domain | null;
  cb: (ev: LifecycleEvent) => void;
  serverId: number | null;
}

type Phase = 'connecting' | 'syncing' | 'open' | 'down' | 'closed';

interface State {
  socketPath: string;
  uri: string;
  log: LibvirtLog | undefined;
  timeoutMs: number;
  reconnect: { initialMs: number; maxMs: number } | undefined;
  keepalive: { intervalMs: number; count: number } | undefined;
  phase: Phase;
  sock: net.Socket | null;
  nextSerial: number;
  pending: Map<number, Pending>;
  subs: Map<number, LifecycleSub>;
  byServerId: Map<number, LifecycleSub>;
  nextSubId: number;
  pingWaiters: Array<() => void>;
  serverPings: number;
  lastRx: number;
  missed: number;
  keepaliveTimer: NodeJS.Timeout | null;
  reconnectedCbs: Set<(ev: ReconnectedEvent) => void>;
  disconnectedCbs: Set<(e: LibvirtConnectionError) => void>;
  reconnectTimer: NodeJS.Timeout | null;
}

// ---- wire -----------------------------------------------------------------------------

function sendKeepalive(st: State, proc: number): void {
  const header = {
    prog: KEEPALIVE_PROGRAM,
    vers: KEEPALIVE_PROTOCOL_VERSION,
    proc,
    type: MessageType.MESSAGE,
    serial: 0,
    status: MessageStatus.OK,
  };
  st.sock?.write(encodePacket(header));
}

/** Sends a CALL; `internal` calls may run while (re)opening the connection. */
function request<T>(
  st: State,
  proc: number,
  args: ArgsWriter | undefined,
  read: RetReader<T>,
  timeoutMs = st.timeoutMs,
  internal = false,
): Promise<T> {
  const procedure = procName(REMOTE_PROGRAM, proc);
  const usable = st.phase === 'open' || (internal && st.phase === 'syncing');
  if (!usable || !st.sock) {
    const reason = st.phase === 'closed' ? 'closed' : 'not-connected';
    return Promise.reject(new LibvirtConnectionError(reason, st.socketPath));
  }
  let body: Buffer | undefined;
  if (args) {
    const w = new XdrWriter();
    args(w);
    body = w.finish();
  }
  const serial = st.nextSerial;
  st.nextSerial = (st.nextSerial + 1) >>> 0;
  const packet = encodePacket(
    {
      prog: REMOTE_PROGRAM,
      vers: REMOTE_PROTOCOL_VERSION,
      proc,
      type: MessageType.CALL,
      serial,
      status: MessageStatus.OK,
    },
    body,
  );
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      st.pending.delete(serial);
      reject(new LibvirtTimeoutError(procedure, timeoutMs));
    }, timeoutMs);
    st.pending.set(serial, {
      procedure,
      read,
      resolve: resolve as (v: unknown) => void,
      reject,
      timer,
    });
    st.sock?.write(packet);
  });
}

function onReply(st: State, pkt: Packet): void {
  const { serial, status } = pkt.header;
  const p = st.pending.get(serial);
  if (!p) {
    st.log?.debug({ socket: st.socketPath, serial }, 'libvirt reply for no pending call');
    return;
  }
  st.pending.delete(serial);
  clearTimeout(p.timer);
  try {
    const r = new XdrReader(pkt.body);
    if (status === MessageStatus.OK) {
      const v = p.read(r);
      r.end(p.procedure);
      p.resolve(v);
    } else if (status === MessageStatus.ERROR) {
      p.reject(new LibvirtError(p.procedure, readRemoteError(r)));
    } else {
      p.reject(new LibvirtProtocolError(`${p.procedure}: unexpected reply status ${status}`));
    }
  } catch (e) {
    p.reject(new LibvirtProtocolError(`${p.procedure}: bad reply: ${(e as Error).message}`));
  }
}

/** Calls every callback; one that throws is logged and does not stop the others. */
function emit<T>(st: State, cbs: Iterable<(arg: T) => void>, arg: T): void {
  for (const cb of cbs) {
    try {
      cb(arg);
    } catch (e) {
      st.log?.warn({ socket: st.socketPath, err: e }, 'libvirt callback threw');
    }
  }
}

function onEvent(st: State, pkt: Packet): void {
  if (pkt.header.proc !== RemoteProc.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
    st.log?.debug({ socket: st.socketPath, proc: pkt.header.proc }, 'libvirt event ignored');
    return;
  }
  const r = new XdrReader(pkt.body);
  const serverId = r.int();
  const domain = readDomain(r);
  const event = r.int();
  const detail = r.int();
  r.end('lifecycle event');
  const sub = st.byServerId.get(serverId);
  if (!sub) {
    st.log?.debug({ socket: st.socketPath, serverId }, 'libvirt event for no callback');
    return;
  }
  const ev = { callbackId: sub.id, domain, event, eventName: domainEventName(event), detail };
  emit(st, [sub.cb], ev);
}

function onKeepalive(st: State, pkt: Packet): void {
  if (pkt.header.proc === KeepaliveProc.PING) {
    st.serverPings++;
    sendKeepalive(st, KeepaliveProc.PONG);
  } else if (pkt.header.proc === KeepaliveProc.PONG) {
    const waiters = st.pingWaiters;
    st.pingWaiters = [];
    for (const w of waiters) w();
  }
}

function onPacket(st: State, bytes: Buffer): void {
  const pkt = decodePacket(bytes);
  const { prog, type } = pkt.header;
  if (prog === KEEPALIVE_PROGRAM) onKeepalive(st, pkt);
  else if (prog !== REMOTE_PROGRAM) {
    st.log?.debug({ socket: st.socketPath, prog }, 'libvirt packet for unknown program');
  } else if (type === MessageType.REPLY) onReply(st, pkt);
  else if (type === MessageType.MESSAGE) onEvent(st, pkt);
  else st.log?.debug({ socket: st.socketPath, type }, 'libvirt packet type ignored');
}

function onData(st: State, sock: net.Socket, splitter: PacketSplitter, chunk: Buffer): void {
  st.lastRx = Date.now();
  st.missed = 0;
  try {
    for (const bytes of splitter.push(chunk)) {
      if (st.sock !== sock) return;
      onPacket(st, bytes);
    }
  } catch (e) {
    const err = new LibvirtProtocolError(String((e as Error).message ?? e));
    st.log?.warn({ socket: st.socketPath, err }, 'libvirt protocol error, dropping connection');
    sock.destroy(err);
  }
}

// ---- connection lifecycle -------------------------------------------------------------

function openSocket(st: State): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: st.socketPath });
    const fail = (e: Error) => {
      sock.destroy();
      reject(new LibvirtConnectionError('connect-failed', st.socketPath, e));
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
  const splitter = createPacketSplitter();
  let lastError: Error | undefined;
  st.sock = sock;
  st.lastRx = Date.now();
  st.missed = 0;
  sock.setNoDelay(true);
  sock.on('data', (chunk: Buffer) => onData(st, sock, splitter, chunk));
  sock.on('error', (e) => {
    lastError = e;
  });
  sock.on('close', () => onClose(st, sock, lastError));
}

function rejectAll(st: State, err: LibvirtConnectionError): void {
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
  const err = new LibvirtConnectionError(reason, st.socketPath, cause);
  rejectAll(st, err);
  st.byServerId.clear();
  for (const sub of st.subs.values()) sub.serverId = null;
  if (!wasOpen) return; // closed by us, or a reconnect attempt that handles its own failure
  st.phase = 'down';
  st.log?.warn({ socket: st.socketPath, uri: st.uri, err }, 'libvirt connection lost');
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

/**
 * AUTH_LIST first: libvirtd's unix socket defaults to polkit auth, which it waives for
 * root (and the daemon's own uid) only when the client asks for the auth list. Other
 * callers then try AUTH_POLKIT; SASL is not supported here.
 */
async function authenticate(st: State): Promise<void> {
  const types = await request(
    st,
    RemoteProc.REMOTE_PROC_AUTH_LIST,
    undefined,
    (r) => r.array((x) => x.int(), REMOTE_AUTH_TYPE_LIST_MAX),
    st.timeoutMs,
    true,
  );
  if (types.length === 0 || types.includes(RemoteAuthType.NONE)) return;
  if (types.includes(RemoteAuthType.POLKIT)) {
    await request(
      st,
      RemoteProc.REMOTE_PROC_AUTH_POLKIT,
      undefined,
      (r) => r.int(), // complete
      st.timeoutMs,
      true,
    );
    return;
  }
  throw new LibvirtProtocolError(`libvirtd wants auth ${types.join(',')}: only polkit/none`);
}

/** Auth, CONNECT_OPEN, keepalive feature, then re-register every lifecycle callback. */
async function handshake(st: State): Promise<number[]> {
  await authenticate(st);
  await request(
    st,
    RemoteProc.REMOTE_PROC_CONNECT_OPEN,
    (w) => w.optional(st.uri, (x, s) => x.string(s, REMOTE_STRING_MAX)).uint(0),
    () => undefined,
    st.timeoutMs,
    true,
  );
  const supported = await request(
    st,
    RemoteProc.REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
    (w) => w.int(VIR_DRV_FEATURE_PROGRAM_KEEPALIVE),
    (r) => r.int(),
    st.timeoutMs,
    true,
  );
  st.log?.debug({ socket: st.socketPath, uri: st.uri, keepalive: supported }, 'libvirt open');
  const ids: number[] = [];
  for (const sub of st.subs.values()) {
    await registerSub(st, sub, st.timeoutMs, true);
    ids.push(sub.id);
  }
  return ids;
}

async function reconnectAttempt(st: State, delayMs: number): Promise<void> {
  if (phaseOf(st) === 'closed') return;
  st.phase = 'connecting';
  let callbacks: number[];
  try {
    const sock = await openSocket(st);
    if (phaseOf(st) === 'closed') {
      sock.destroy();
      return;
    }
    attach(st, sock);
    st.phase = 'syncing';
    callbacks = await handshake(st);
    if (phaseOf(st) !== 'syncing' || st.sock !== sock) throw new Error('connection lost');
  } catch (e) {
    const sock = st.sock;
    st.sock = null;
    sock?.destroy();
    if (phaseOf(st) === 'closed') return;
    st.phase = 'down';
    const next = Math.min(delayMs * 2, st.reconnect?.maxMs ?? delayMs);
    st.log?.debug({ socket: st.socketPath, err: e, retryMs: next }, 'libvirt reconnect failed');
    scheduleReconnect(st, next);
    return;
  }
  st.phase = 'open';
  st.log?.info({ socket: st.socketPath, uri: st.uri, callbacks }, 'libvirt reconnected');
  emit(st, st.reconnectedCbs, { callbacks });
}

function keepaliveTick(st: State): void {
  const ka = st.keepalive;
  if (!ka || st.phase !== 'open' || !st.sock) return;
  if (Date.now() - st.lastRx < ka.intervalMs) return;
  st.missed++;
  if (st.missed > ka.count) {
    st.log?.warn({ socket: st.socketPath, missed: st.missed }, 'libvirt keepalive timed out');
    st.sock.destroy(new Error(`no keepalive reply in ${ka.count} intervals`));
    return;
  }
  sendKeepalive(st, KeepaliveProc.PING);
}

async function closeClient(st: State): Promise<void> {
  if (st.phase === 'closed') return;
  if (st.phase === 'open') {
    try {
      await request(st, RemoteProc.REMOTE_PROC_CONNECT_CLOSE, undefined, () => undefined, 2000);
    } catch (e) {
      st.log?.debug({ socket: st.socketPath, err: e }, 'libvirt CONNECT_CLOSE failed');
    }
  }
  st.phase = 'closed';
  if (st.reconnectTimer) clearTimeout(st.reconnectTimer);
  st.reconnectTimer = null;
  if (st.keepaliveTimer) clearInterval(st.keepaliveTimer);
  st.keepaliveTimer = null;
  const sock = st.sock;
  rejectAll(st, new LibvirtConnectionError('closed', st.socketPath));
  if (!sock || sock.destroyed) return;
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
    sock.destroy();
  });
}

// ---- procedures -----------------------------------------------------------------------

const none = (): undefined => undefined;
const str = (w: XdrWriter, s: string) => w.string(s, REMOTE_STRING_MAX);
const readStr = (r: XdrReader) => r.string(REMOTE_STRING_MAX);
const domArgs =
  (dom: Domain, flags?: number): ArgsWriter =>
  (w) => {
    writeDomain(w, dom);
    if (flags !== undefined) w.uint(flags);
  };

async function registerSub(
  st: State,
  sub: LifecycleSub,
  timeoutMs: number,
  internal: boolean,
): Promise<void> {
  await request(
    st,
    RemoteProc.REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
    (w) => w.int(DomainEventId.LIFECYCLE).optional(sub.domain, writeDomain),
    (r) => {
      // runs synchronously when the reply is decoded: events that follow it in the same
      // chunk already find their subscription
      const serverId = r.int();
      sub.serverId = serverId;
      st.byServerId.set(serverId, sub);
    },
    timeoutMs,
    internal,
  );
}

async function registerLifecycle(
  st: State,
  cb: (ev: LifecycleEvent) => void,
  opts: ({ domain?: Domain } & CallOptions) | undefined,
): Promise<LifecycleRegistration> {
  const sub: LifecycleSub = {
    id: st.nextSubId++,
    domain: opts?.domain ?? null,
    cb,
    serverId: null,
  };
  await registerSub(st, sub, opts?.timeoutMs ?? st.timeoutMs, false);
  st.subs.set(sub.id, sub);
  return { id: sub.id, deregister: () => deregister(st, sub) };
}

async function deregister(st: State, sub: LifecycleSub): Promise<void> {
  if (!st.subs.delete(sub.id)) return;
  const serverId = sub.serverId;
  sub.serverId = null;
  if (serverId === null) return; // the connection that knew it is gone
  st.byServerId.delete(serverId);
  if (st.phase !== 'open') return;
  await request(
    st,
    RemoteProc.REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
    (w) => w.int(serverId),
    none,
  );
}

function ping(st: State, opts?: CallOptions): Promise<number> {
  if (st.phase !== 'open' || !st.sock) {
    const reason = st.phase === 'closed' ? 'closed' : 'not-connected';
    return Promise.reject(new LibvirtConnectionError(reason, st.socketPath));
  }
  const timeoutMs = opts?.timeoutMs ?? st.timeoutMs;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
    };
    const timer = setTimeout(() => {
      st.pingWaiters = st.pingWaiters.filter((w) => w !== done);
      reject(new LibvirtTimeoutError('KEEPALIVE_PROC_PING', timeoutMs));
    }, timeoutMs);
    st.pingWaiters.push(done);
    sendKeepalive(st, KeepaliveProc.PING);
  });
}

function readInfo(r: XdrReader): DomainInfo {
  // unsigned char / unsigned short travel as 4-byte unsigned ints in XDR
  return {
    state: r.uint(),
    maxMemKiB: r.hyperNumber(),
    memoryKiB: r.hyperNumber(),
    nrVirtCpu: r.uint(),
    cpuTimeNs: r.uhyper(),
  };
}

function newState(opts: LibvirtClientOptions): State {
  return {
    socketPath: opts.socket ?? DEFAULT_LIBVIRT_SOCKET,
    uri: opts.uri,
    log: opts.log,
    timeoutMs: opts.timeoutMs ?? 30_000,
    reconnect: opts.reconnect,
    keepalive: opts.keepalive,
    phase: 'connecting',
    sock: null,
    nextSerial: 1,
    pending: new Map(),
    subs: new Map(),
    byServerId: new Map(),
    nextSubId: 1,
    pingWaiters: [],
    serverPings: 0,
    lastRx: 0,
    missed: 0,
    keepaliveTimer: null,
    reconnectedCbs: new Set(),
    disconnectedCbs: new Set(),
    reconnectTimer: null,
  };
}

function subscribe<T>(cbs: Set<T>, cb: T): () => void {
  cbs.add(cb);
  return () => {
    cbs.delete(cb);
  };
}

/** Connects, opens the URI (both must succeed, reconnect or not) and returns the client. */
export async function createLibvirtClient(opts: LibvirtClientOptions): Promise<LibvirtClient> {
  const st = newState(opts);
  const sock = await openSocket(st);
  attach(st, sock);
  st.phase = 'syncing';
  try {
    await handshake(st);
  } catch (e) {
    st.phase = 'closed';
    st.sock = null;
    sock.destroy();
    throw e;
  }
  st.phase = 'open';
  if (st.keepalive) {
    const every = Math.max(100, Math.floor(st.keepalive.intervalMs / 2));
    st.keepaliveTimer = setInterval(() => keepaliveTick(st), every);
    st.keepaliveTimer.unref();
  }

  const call = <T>(proc: number, args?: ArgsWriter, ret?: RetReader<T>, o?: CallOptions) =>
    request(st, proc, args, (ret ?? none) as RetReader<T>, o?.timeoutMs);
  const P = RemoteProc;
  return {
    uri: st.uri,
    call,
    getHostname: (o) => call(P.REMOTE_PROC_CONNECT_GET_HOSTNAME, undefined, readStr, o),
    getVersion: (o) =>
      call(P.REMOTE_PROC_CONNECT_GET_VERSION, undefined, (r) => r.hyperNumber(), o),
    getLibVersion: (o) =>
      call(P.REMOTE_PROC_CONNECT_GET_LIB_VERSION, undefined, (r) => r.hyperNumber(), o),
    getType: (o) => call(P.REMOTE_PROC_CONNECT_GET_TYPE, undefined, readStr, o),
    listAllDomains: (flags = 0, o) =>
      call(
        P.REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS,
        (w) => w.int(1).uint(flags), // need_results
        (r) => {
          const domains = r.array(readDomain, REMOTE_DOMAIN_LIST_MAX);
          r.uint(); // ret: the count again
          return domains;
        },
        o,
      ),
    lookupByName: (name, o) =>
      call(P.REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, (w) => str(w, name), readDomain, o),
    lookupByUuid: (uuid, o) =>
      call(
        P.REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID,
        (w) => w.opaqueFixed(uuidToBytes(uuid), VIR_UUID_BUFLEN),
        readDomain,
        o,
      ),
    defineXml: (xml, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS, (w) => str(w, xml).uint(flags), readDomain, o),
    undefine: (dom, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS, domArgs(dom, flags), none, o),
    create: (dom, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS, domArgs(dom, flags), readDomain, o),
    destroy: (dom, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_DESTROY_FLAGS, domArgs(dom, flags), none, o),
    shutdown: (dom, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS, domArgs(dom, flags), none, o),
    reboot: (dom, flags = 0, o) => call(P.REMOTE_PROC_DOMAIN_REBOOT, domArgs(dom, flags), none, o),
    suspend: (dom, o) => call(P.REMOTE_PROC_DOMAIN_SUSPEND, domArgs(dom), none, o),
    resume: (dom, o) => call(P.REMOTE_PROC_DOMAIN_RESUME, domArgs(dom), none, o),
    managedSave: (dom, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_MANAGED_SAVE, domArgs(dom, flags), none, o),
    hasManagedSaveImage: (dom, o) =>
      call(P.REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, domArgs(dom, 0), (r) => r.int() === 1, o),
    managedSaveRemove: (dom, o) =>
      call(P.REMOTE_PROC_DOMAIN_MANAGED_SAVE_REMOVE, domArgs(dom, 0), none, o),
    getInfo: (dom, o) => call(P.REMOTE_PROC_DOMAIN_GET_INFO, domArgs(dom), readInfo, o),
    getState: (dom, o) =>
      call(
        P.REMOTE_PROC_DOMAIN_GET_STATE,
        domArgs(dom, 0),
        (r) => ({ state: r.int(), reason: r.int() }),
        o,
      ),
    getXmlDesc: (dom, flags = 0, o) =>
      call(P.REMOTE_PROC_DOMAIN_GET_XML_DESC, domArgs(dom, flags), readStr, o),
    attachDevice: (dom, xml, flags = 0, o) =>
      call(
        P.REMOTE_PROC_DOMAIN_ATTACH_DEVICE_FLAGS,
        (w) => {
          writeDomain(w, dom);
          str(w, xml).uint(flags);
        },
        none,
        o,
      ),
    detachDevice: (dom, xml, flags = 0, o) =>
      call(
        P.REMOTE_PROC_DOMAIN_DETACH_DEVICE_FLAGS,
        (w) => {
          writeDomain(w, dom);
          str(w, xml).uint(flags);
        },
        none,
        o,
      ),
    registerLifecycle: (cb, o) => registerLifecycle(st, cb, o),
    ping: (o) => ping(st, o),
    onReconnected: (cb) => subscribe(st.reconnectedCbs, cb),
    onDisconnected: (cb) => subscribe(st.disconnectedCbs, cb),
    isConnected: () => st.phase === 'open',
    serverPings: () => st.serverPings,
    close: () => closeClient(st),
  };
}
