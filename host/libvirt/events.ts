/**
 * What libvirtd sends unasked, and the registrations behind it: domain lifecycle events
 * with their callbacks, and the keepalive program (PINGs answered with PONGs, our own
 * `ping()` resolved by the next PONG).
 *
 * Invariants:
 * - Lifecycle callbacks are identified by our own stable id: libvirtd's callbackID changes
 *   on every (re)registration and never leaks out. The mapping is installed while the
 *   register reply is decoded, so an event in the same chunk is not lost.
 * - When a connection goes away every server-side id is forgotten (`dropServerIds`); the
 *   registrations stay, and `reregisterAll` re-creates them on the next connection.
 * - A server PING is always answered with a PONG, and counted.
 */
import type { CallOptions } from '../session/session.ts';
import { DomainEventId, domainEventName } from './enums.ts';
import { LibvirtTimeoutError } from './errors.ts';
import {
  type Domain,
  KEEPALIVE_PROGRAM,
  KeepaliveProc,
  type Packet,
  RemoteProc,
  readDomain,
  writeDomain,
} from './protocol.ts';
import type { LibvirtLog, LifecycleEvent, LifecycleRegistration } from './types.ts';
import { keepalivePacket, type LibvirtCall, remoteCall } from './wire.ts';
import { XdrReader, type XdrWriter } from './xdr.ts';

interface LifecycleSub {
  id: number;
  domain: Domain | null;
  cb: (ev: LifecycleEvent) => void;
  serverId: number | null;
}

/** The part of the session events use: calling, sending, delivering, its state. */
export interface EventLink {
  call: LibvirtCall;
  send(data: Buffer): void;
  isOpen(): boolean;
  downError(): Error;
  emit<T>(cbs: Iterable<(arg: T) => void>, arg: T): void;
}

export interface Events {
  log: LibvirtLog | undefined;
  context: object;
  subs: Map<number, LifecycleSub>;
  byServerId: Map<number, LifecycleSub>;
  nextSubId: number;
  pingWaiters: Array<() => void>;
  serverPings: number;
}

export function createEvents(log: LibvirtLog | undefined, context: object): Events {
  return {
    log,
    context,
    subs: new Map(),
    byServerId: new Map(),
    nextSubId: 1,
    pingWaiters: [],
    serverPings: 0,
  };
}

// ---- incoming ---------------------------------------------------------------------------

function onLifecycle(ev: Events, link: EventLink, pkt: Packet): void {
  const r = new XdrReader(pkt.body);
  const serverId = r.int();
  const domain = readDomain(r);
  const event = r.int();
  const detail = r.int();
  r.end('lifecycle event');
  const sub = ev.byServerId.get(serverId);
  if (!sub) {
    ev.log?.debug({ ...ev.context, serverId }, 'libvirt event for no callback');
    return;
  }
  const out = { callbackId: sub.id, domain, event, eventName: domainEventName(event), detail };
  link.emit([sub.cb], out);
}

function onKeepalive(ev: Events, link: EventLink, pkt: Packet): void {
  if (pkt.header.proc === KeepaliveProc.PING) {
    ev.serverPings++;
    link.send(keepalivePacket(KeepaliveProc.PONG));
  } else if (pkt.header.proc === KeepaliveProc.PONG) {
    const waiters = ev.pingWaiters;
    ev.pingWaiters = [];
    for (const w of waiters) w();
  }
}

/** Every packet that is not a reply to one of our calls. Throws on a malformed event. */
export function onUnsolicited(ev: Events, link: EventLink, pkt: Packet): void {
  const { prog, proc } = pkt.header;
  if (prog === KEEPALIVE_PROGRAM) onKeepalive(ev, link, pkt);
  else if (proc === RemoteProc.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
    onLifecycle(ev, link, pkt);
  } else ev.log?.debug({ ...ev.context, prog, proc }, 'libvirt packet ignored');
}

/** The connection went away: libvirtd forgot every registration it had for us. */
export function dropServerIds(ev: Events): void {
  ev.byServerId.clear();
  for (const sub of ev.subs.values()) sub.serverId = null;
}

// ---- registrations ----------------------------------------------------------------------

function registerSub(
  ev: Events,
  sub: LifecycleSub,
  call: LibvirtCall,
  opts?: CallOptions,
): Promise<void> {
  const args = (w: XdrWriter) => w.int(DomainEventId.LIFECYCLE).optional(sub.domain, writeDomain);
  const read = (r: XdrReader) => {
    // runs synchronously when the reply is decoded: events that follow it in the same
    // chunk already find their subscription
    const serverId = r.int();
    sub.serverId = serverId;
    ev.byServerId.set(serverId, sub);
  };
  const proc = RemoteProc.REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY;
  return remoteCall(call, proc, args, read, opts);
}

/** Re-creates every registration on a new connection; returns our ids of them. */
export async function reregisterAll(ev: Events, call: LibvirtCall): Promise<number[]> {
  const ids: number[] = [];
  for (const sub of ev.subs.values()) {
    await registerSub(ev, sub, call);
    ids.push(sub.id);
  }
  return ids;
}

async function deregister(ev: Events, link: EventLink, sub: LifecycleSub): Promise<void> {
  if (!ev.subs.delete(sub.id)) return;
  const serverId = sub.serverId;
  sub.serverId = null;
  if (serverId === null) return; // the connection that knew it is gone
  ev.byServerId.delete(serverId);
  if (!link.isOpen()) return;
  const proc = RemoteProc.REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY;
  await remoteCall(
    link.call,
    proc,
    (w) => w.int(serverId),
    () => undefined,
  );
}

export async function registerLifecycle(
  ev: Events,
  link: EventLink,
  cb: (e: LifecycleEvent) => void,
  opts: ({ domain?: Domain } & CallOptions) | undefined,
): Promise<LifecycleRegistration> {
  const sub: LifecycleSub = {
    id: ev.nextSubId++,
    domain: opts?.domain ?? null,
    cb,
    serverId: null,
  };
  await registerSub(ev, sub, link.call, opts);
  ev.subs.set(sub.id, sub);
  return { id: sub.id, deregister: () => deregister(ev, link, sub) };
}

/** Sends a keepalive PING; resolves with the round-trip time when the next PONG comes. */
export function ping(ev: Events, link: EventLink, timeoutMs: number): Promise<number> {
  if (!link.isOpen()) return Promise.reject(link.downError());
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
    };
    const timer = setTimeout(() => {
      ev.pingWaiters = ev.pingWaiters.filter((w) => w !== done);
      reject(new LibvirtTimeoutError('KEEPALIVE_PROC_PING', timeoutMs));
    }, timeoutMs);
    ev.pingWaiters.push(done);
    link.send(keepalivePacket(KeepaliveProc.PING));
  });
}
