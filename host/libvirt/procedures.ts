/**
 * The procedure table: each connection and domain method of `LibvirtClient` as the
 * remote-program procedure it calls, its XDR arguments and its ret decoder, written the
 * way remote_protocol.x declares them (remote_domain_*_args / _ret). Only encoding here;
 * the session does the calling.
 *
 * Invariant: one method is one procedure call; a method's argument order and flags
 * default (0) follow the libvirt C API it mirrors, so its documentation applies.
 */
import type { CallOptions } from '../session/session.ts';
import {
  type Domain,
  RemoteProc as P,
  REMOTE_DOMAIN_LIST_MAX,
  REMOTE_STRING_MAX,
  readDomain,
  uuidToBytes,
  VIR_UUID_BUFLEN,
  writeDomain,
} from './protocol.ts';
import { secretProcedures } from './secrets.ts';
import type { ArgsWriter, DomainInfo, LibvirtClient, ProcCall } from './types.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

/** `LibvirtClient`'s methods that are a single procedure call each. */
export type Procedures = Omit<
  LibvirtClient,
  | 'uri'
  | 'call'
  | 'registerLifecycle'
  | 'ping'
  | 'onReconnected'
  | 'onDisconnected'
  | 'isConnected'
  | 'serverPings'
  | 'close'
>;

export type { ProcCall } from './types.ts';

export const none = (): undefined => undefined;
const str = (w: XdrWriter, s: string) => w.string(s, REMOTE_STRING_MAX);
const readStr = (r: XdrReader) => r.string(REMOTE_STRING_MAX);
const readHyper = (r: XdrReader) => r.hyperNumber();

const domArgs =
  (dom: Domain, flags?: number): ArgsWriter =>
  (w) => {
    writeDomain(w, dom);
    if (flags !== undefined) w.uint(flags);
  };

const domXmlArgs =
  (dom: Domain, xml: string, flags: number): ArgsWriter =>
  (w) => {
    writeDomain(w, dom);
    str(w, xml).uint(flags);
  };

/** remote_connect_list_all_domains_args: need_results = 1, then the flags. */
const listArgs =
  (flags: number): ArgsWriter =>
  (w) =>
    w.int(1).uint(flags);

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

function readDomainList(r: XdrReader): Domain[] {
  const domains = r.array(readDomain, REMOTE_DOMAIN_LIST_MAX);
  r.uint(); // ret: the count again
  return domains;
}

function connectProcedures(call: ProcCall) {
  return {
    getHostname: (o?: CallOptions) =>
      call(P.REMOTE_PROC_CONNECT_GET_HOSTNAME, undefined, readStr, o),
    getVersion: (o?: CallOptions) =>
      call(P.REMOTE_PROC_CONNECT_GET_VERSION, undefined, readHyper, o),
    getLibVersion: (o?: CallOptions) =>
      call(P.REMOTE_PROC_CONNECT_GET_LIB_VERSION, undefined, readHyper, o),
    getType: (o?: CallOptions) => call(P.REMOTE_PROC_CONNECT_GET_TYPE, undefined, readStr, o),
    listAllDomains: (flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, listArgs(flags), readDomainList, o),
  };
}

function lookupProcedures(call: ProcCall) {
  return {
    lookupByName: (name: string, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, (w) => str(w, name), readDomain, o),
    lookupByUuid: (uuid: string, o?: CallOptions) =>
      call(
        P.REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID,
        (w) => w.opaqueFixed(uuidToBytes(uuid), VIR_UUID_BUFLEN),
        readDomain,
        o,
      ),
    defineXml: (xml: string, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS, (w) => str(w, xml).uint(flags), readDomain, o),
  };
}

function lifecycleProcedures(call: ProcCall) {
  return {
    undefine: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS, domArgs(dom, flags), none, o),
    create: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS, domArgs(dom, flags), readDomain, o),
    destroy: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_DESTROY_FLAGS, domArgs(dom, flags), none, o),
    shutdown: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS, domArgs(dom, flags), none, o),
    reboot: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_REBOOT, domArgs(dom, flags), none, o),
    suspend: (dom: Domain, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_SUSPEND, domArgs(dom), none, o),
    resume: (dom: Domain, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_RESUME, domArgs(dom), none, o),
  };
}

function saveProcedures(call: ProcCall) {
  return {
    managedSave: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_MANAGED_SAVE, domArgs(dom, flags), none, o),
    hasManagedSaveImage: (dom: Domain, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, domArgs(dom, 0), (r) => r.int() === 1, o),
    managedSaveRemove: (dom: Domain, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_MANAGED_SAVE_REMOVE, domArgs(dom, 0), none, o),
  };
}

function inspectProcedures(call: ProcCall) {
  return {
    getInfo: (dom: Domain, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_GET_INFO, domArgs(dom), readInfo, o),
    getState: (dom: Domain, o?: CallOptions) =>
      call(
        P.REMOTE_PROC_DOMAIN_GET_STATE,
        domArgs(dom, 0),
        (r) => ({ state: r.int(), reason: r.int() }),
        o,
      ),
    getXmlDesc: (dom: Domain, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_GET_XML_DESC, domArgs(dom, flags), readStr, o),
  };
}

function deviceProcedures(call: ProcCall) {
  return {
    attachDevice: (dom: Domain, xml: string, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_ATTACH_DEVICE_FLAGS, domXmlArgs(dom, xml, flags), none, o),
    detachDevice: (dom: Domain, xml: string, flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_DOMAIN_DETACH_DEVICE_FLAGS, domXmlArgs(dom, xml, flags), none, o),
  };
}

/** Every single-procedure method of the client, on top of its raw call. */
export function procedures(call: ProcCall): Procedures {
  return {
    ...connectProcedures(call),
    ...lookupProcedures(call),
    ...lifecycleProcedures(call),
    ...saveProcedures(call),
    ...inspectProcedures(call),
    ...deviceProcedures(call),
    ...secretProcedures(call),
  };
}
