/**
 * libvirt's RPC wire format, from libvirt's `src/rpc/virnetprotocol.x`,
 * `src/rpc/virkeepaliveprotocol.x` and `src/remote/remote_protocol.x`: packet framing and
 * header, the remote program's procedure numbers we use, the shared structs
 * (remote_nonnull_domain, remote_nonnull_secret, remote_error) and UUID text ↔ bytes. libvirt's public enums
 * are in enums.ts. Pure, no I/O.
 *
 * Invariants:
 * - A packet is `length` (unsigned int, counting itself) + a 24-byte header + payload;
 *   `createPacketSplitter` yields whole packets (the length word stripped) whatever the
 *   chunking, and rejects lengths outside [28, VIR_NET_MESSAGE_MAX + 4].
 * - Procedure numbers are append-only and stable in libvirt; the names are theirs.
 */
import { XdrError, XdrReader, XdrWriter } from './xdr.ts';

// ---- virnetprotocol.x ---------------------------------------------------------------

/** Maximum total message size (serialised, without the length word). */
export const VIR_NET_MESSAGE_MAX = 16_777_216;
export const VIR_NET_MESSAGE_HEADER_MAX = 24;
export const VIR_NET_MESSAGE_LEN_MAX = 4;
export const VIR_UUID_BUFLEN = 16;
/** remote_protocol.x: REMOTE_STRING_MAX (strings, including domain XML). */
export const REMOTE_STRING_MAX = 4_194_304;
export const REMOTE_DOMAIN_LIST_MAX = 16_384;
export const REMOTE_AUTH_TYPE_LIST_MAX = 20;
/** remote_protocol.x: the largest secret value, and the longest list of secrets. */
export const REMOTE_SECRET_VALUE_MAX = 65_536;
export const REMOTE_SECRET_LIST_MAX = 16_384;

/** remote_auth_type */
export const RemoteAuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

export const MessageType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
} as const;

export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KeepaliveProc = { PING: 1, PONG: 2 } as const;

/** The remote_procedure numbers this client uses, named as in remote_protocol.x. */
export const RemoteProc = {
  REMOTE_PROC_CONNECT_OPEN: 1,
  REMOTE_PROC_CONNECT_CLOSE: 2,
  REMOTE_PROC_CONNECT_GET_TYPE: 3,
  REMOTE_PROC_CONNECT_GET_VERSION: 4,
  REMOTE_PROC_DOMAIN_CREATE: 9,
  REMOTE_PROC_DOMAIN_DESTROY: 12,
  REMOTE_PROC_DOMAIN_GET_XML_DESC: 14,
  REMOTE_PROC_DOMAIN_GET_INFO: 16,
  REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME: 23,
  REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID: 24,
  REMOTE_PROC_DOMAIN_REBOOT: 27,
  REMOTE_PROC_DOMAIN_RESUME: 28,
  REMOTE_PROC_DOMAIN_SHUTDOWN: 33,
  REMOTE_PROC_DOMAIN_SUSPEND: 34,
  REMOTE_PROC_CONNECT_GET_HOSTNAME: 59,
  REMOTE_PROC_CONNECT_SUPPORTS_FEATURE: 60,
  REMOTE_PROC_AUTH_LIST: 66,
  REMOTE_PROC_AUTH_POLKIT: 70,
  REMOTE_PROC_SECRET_LOOKUP_BY_UUID: 141,
  REMOTE_PROC_SECRET_DEFINE_XML: 142,
  REMOTE_PROC_SECRET_GET_XML_DESC: 143,
  REMOTE_PROC_SECRET_SET_VALUE: 144,
  REMOTE_PROC_SECRET_UNDEFINE: 146,
  REMOTE_PROC_CONNECT_GET_LIB_VERSION: 157,
  REMOTE_PROC_DOMAIN_MANAGED_SAVE: 182,
  REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE: 183,
  REMOTE_PROC_DOMAIN_MANAGED_SAVE_REMOVE: 184,
  REMOTE_PROC_DOMAIN_ATTACH_DEVICE_FLAGS: 160,
  REMOTE_PROC_DOMAIN_DETACH_DEVICE_FLAGS: 161,
  REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS: 196,
  REMOTE_PROC_DOMAIN_GET_STATE: 212,
  REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS: 231,
  REMOTE_PROC_DOMAIN_DESTROY_FLAGS: 234,
  REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS: 258,
  REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS: 273,
  REMOTE_PROC_CONNECT_LIST_ALL_SECRETS: 287,
  REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS: 350,
} as const;

export type RemoteProcName = keyof typeof RemoteProc;

const procNames = new Map<number, string>(Object.entries(RemoteProc).map(([k, v]) => [v, k]));

/** `REMOTE_PROC_…` name of a procedure number (or `proc <n>` when not in our table). */
export function procName(program: number, proc: number): string {
  if (program === KEEPALIVE_PROGRAM) {
    return proc === KeepaliveProc.PING ? 'KEEPALIVE_PROC_PING' : 'KEEPALIVE_PROC_PONG';
  }
  return procNames.get(proc) ?? `proc ${proc}`;
}

// ---- packet header and framing --------------------------------------------------------

export interface PacketHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

export interface Packet {
  header: PacketHeader;
  /** The payload after the header (args, ret, remote_error or event msg). */
  body: Buffer;
}

/** Encodes one whole packet: length word + header + body. */
export function encodePacket(header: PacketHeader, body: Uint8Array = new Uint8Array(0)): Buffer {
  const total = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX + body.length;
  if (total - VIR_NET_MESSAGE_LEN_MAX > VIR_NET_MESSAGE_MAX) {
    throw new XdrError(`packet of ${total} bytes exceeds VIR_NET_MESSAGE_MAX`);
  }
  const w = new XdrWriter(total);
  w.uint(total)
    .uint(header.prog)
    .uint(header.vers)
    .int(header.proc)
    .int(header.type)
    .uint(header.serial)
    .int(header.status);
  const out = w.finish();
  return Buffer.concat([out, body], total);
}

/** Decodes a packet without its length word (what the splitter yields). */
export function decodePacket(bytes: Buffer): Packet {
  const r = new XdrReader(bytes);
  const header: PacketHeader = {
    prog: r.uint(),
    vers: r.uint(),
    proc: r.int(),
    type: r.int(),
    serial: r.uint(),
    status: r.int(),
  };
  return { header, body: bytes.subarray(r.offset) };
}

export interface PacketSplitter {
  /** Feeds a chunk from the socket; returns the whole packets it completed, in order. */
  push(chunk: Buffer): Buffer[];
  /** Bytes buffered for an incomplete packet. */
  pending(): number;
}

/** Reassembles length-prefixed packets from a byte stream. */
export function createPacketSplitter(): PacketSplitter {
  let chunks: Buffer[] = [];
  let have = 0;
  return {
    push(chunk) {
      chunks.push(chunk);
      have += chunk.length;
      const out: Buffer[] = [];
      while (have >= VIR_NET_MESSAGE_LEN_MAX) {
        let buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, have);
        chunks = [buf];
        const len = buf.readUInt32BE(0);
        const min = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX;
        if (len < min || len > VIR_NET_MESSAGE_MAX + VIR_NET_MESSAGE_LEN_MAX) {
          throw new XdrError(`bad packet length ${len}`);
        }
        if (have < len) break;
        out.push(Buffer.from(buf.subarray(VIR_NET_MESSAGE_LEN_MAX, len)));
        buf = buf.subarray(len);
        chunks = buf.length > 0 ? [buf] : [];
        have = buf.length;
      }
      return out;
    },
    pending: () => have,
  };
}

// ---- shared structs --------------------------------------------------------------------

/** remote_nonnull_domain: a domain handle as libvirt passes it. `id` is -1 when inactive. */
export interface Domain {
  name: string;
  /** Canonical lower-case text form, 8-4-4-4-12. */
  uuid: string;
  id: number;
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** UUID text (with or without dashes) → 16 bytes. */
export function uuidToBytes(uuid: string): Buffer {
  if (!UUID_RE.test(uuid)) throw new TypeError(`not a UUID: ${uuid}`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** 16 bytes → canonical UUID text. */
export function uuidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== VIR_UUID_BUFLEN) throw new TypeError(`UUID needs 16 bytes`);
  const h = Buffer.from(bytes).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function writeDomain(w: XdrWriter, d: Domain): void {
  w.string(d.name, REMOTE_STRING_MAX);
  w.opaqueFixed(uuidToBytes(d.uuid), VIR_UUID_BUFLEN);
  w.int(d.id);
}

export function readDomain(r: XdrReader): Domain {
  const name = r.string(REMOTE_STRING_MAX);
  const uuid = uuidFromBytes(r.opaqueFixed(VIR_UUID_BUFLEN));
  return { name, uuid, id: r.int() };
}

/** remote_nonnull_secret: a secret handle (`usageType`: virSecretUsageType). */
export interface Secret {
  /** Canonical lower-case text form, 8-4-4-4-12. */
  uuid: string;
  usageType: number;
  /** What the secret is for (an iSCSI target name, a volume path …). */
  usageId: string;
}

export function writeSecret(w: XdrWriter, s: Secret): void {
  w.opaqueFixed(uuidToBytes(s.uuid), VIR_UUID_BUFLEN);
  w.int(s.usageType);
  w.string(s.usageId, REMOTE_STRING_MAX);
}

export function readSecret(r: XdrReader): Secret {
  const uuid = uuidFromBytes(r.opaqueFixed(VIR_UUID_BUFLEN));
  const usageType = r.int();
  return { uuid, usageType, usageId: r.string(REMOTE_STRING_MAX) };
}

/** remote_network (only skipped over: it sits in remote_error and is unused). */
function readNetwork(r: XdrReader): { name: string; uuid: string } {
  const name = r.string(REMOTE_STRING_MAX);
  return { name, uuid: uuidFromBytes(r.opaqueFixed(VIR_UUID_BUFLEN)) };
}

/** remote_error, as carried by a REPLY with status ERROR. */
export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

export function readRemoteError(r: XdrReader): RemoteError {
  const str = (x: XdrReader) => x.string(REMOTE_STRING_MAX);
  const code = r.int();
  const domain = r.int();
  const message = r.optional(str);
  const level = r.int();
  r.optional(readDomain); // dom: unused
  const str1 = r.optional(str);
  const str2 = r.optional(str);
  const str3 = r.optional(str);
  const int1 = r.int();
  const int2 = r.int();
  r.optional(readNetwork); // net: unused
  return { code, domain, message, level, str1, str2, str3, int1, int2 };
}

export function writeRemoteError(w: XdrWriter, e: RemoteError): void {
  const str = (x: XdrWriter, s: string) => x.string(s, REMOTE_STRING_MAX);
  w.int(e.code).int(e.domain).optional(e.message, str).int(e.level).optional(null, writeDomain);
  w.optional(e.str1, str).optional(e.str2, str).optional(e.str3, str);
  w.int(e.int1).int(e.int2).bool(false);
}

/** virDrvFeature (src/libvirt_internal.h): the remote party supports the keepalive program. */
export const VIR_DRV_FEATURE_PROGRAM_KEEPALIVE = 10;
