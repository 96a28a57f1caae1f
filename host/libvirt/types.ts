/**
 * The libvirt client's public shape: its options, the values its procedures return, the
 * lifecycle event and registration, and the `LibvirtClient` interface itself. Types
 * only: no code, so every other module of the client can import them without cycles.
 *
 * Invariant: these are the only names callers outside host/libvirt depend on (besides
 * the errors and protocol.ts's constants); the split of the client into modules behind
 * them is free to change.
 */
import type { CallOptions, SessionLog } from '../session/session.ts';
import type { DomainEventName } from './enums.ts';
import type { LibvirtConnectionError } from './errors.ts';
import type { Domain, Secret } from './protocol.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

/** Structural subset of pino's logger, so host/ does not depend on core/log. */
export type LibvirtLog = SessionLog;

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

export type { CallOptions } from '../session/session.ts';

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

/** The client's raw call: procedure number, argument writer, ret decoder. */
export type ProcCall = <T>(
  proc: number,
  args: ArgsWriter | undefined,
  ret: RetReader<T>,
  opts?: CallOptions,
) => Promise<T>;

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
  /** Defines (or redefines, same uuid and usage) a secret from its `<secret>` XML. */
  secretDefineXml(xml: string, flags?: number, opts?: CallOptions): Promise<Secret>;
  /** Sets the secret's value (raw bytes; a CHAP secret is its ASCII text). */
  secretSetValue(
    secret: Secret,
    value: Uint8Array,
    flags?: number,
    opts?: CallOptions,
  ): Promise<void>;
  /** VIR_ERR_NO_SECRET when there is none. */
  secretLookupByUuid(uuid: string, opts?: CallOptions): Promise<Secret>;
  secretGetXmlDesc(secret: Secret, flags?: number, opts?: CallOptions): Promise<string>;
  secretUndefine(secret: Secret, opts?: CallOptions): Promise<void>;
  /** Every secret (flags: `ListSecretsFlags`, 0 = all). */
  listAllSecrets(flags?: number, opts?: CallOptions): Promise<Secret[]>;
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
