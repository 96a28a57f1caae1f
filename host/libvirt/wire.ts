/**
 * libvirt's RPC as the socket session sees it: how a CALL is encoded (the session's call
 * id is the packet serial), how bytes become packets, which packets answer which call,
 * and `remoteCall`, which runs one remote-program procedure with XDR arguments and a
 * typed result. No state and no socket of its own.
 *
 * Invariants:
 * - A REPLY of the remote program with status OK is the reply to its serial; any other
 *   REPLY status is an error reply (a `LibvirtError` when libvirtd sent a remote_error);
 *   every other packet (keepalive program, MESSAGE events) is unsolicited.
 * - A reply payload is decoded completely or the call fails: trailing bytes are an error.
 */
import type { Call, CallOptions, Framing } from '../session/session.ts';
import { LibvirtError, LibvirtProtocolError } from './errors.ts';
import {
  createPacketSplitter,
  decodePacket,
  encodePacket,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  MessageStatus,
  MessageType,
  type Packet,
  procName,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  readRemoteError,
} from './protocol.ts';
import type { ArgsWriter, RetReader } from './types.ts';
import { XdrReader, XdrWriter } from './xdr.ts';

/** One CALL of the remote program: the procedure number and its argument writer. */
export interface RemoteCall {
  proc: number;
  args: ArgsWriter | undefined;
}

export type LibvirtCall = Call<RemoteCall, Packet>;

function encodeCall(req: RemoteCall, serial: number): Buffer {
  let body: Buffer | undefined;
  if (req.args) {
    const w = new XdrWriter();
    req.args(w);
    body = w.finish();
  }
  const header = {
    prog: REMOTE_PROGRAM,
    vers: REMOTE_PROTOCOL_VERSION,
    proc: req.proc,
    type: MessageType.CALL,
    serial,
    status: MessageStatus.OK,
  };
  return encodePacket(header, body);
}

function packetDecoder(): (chunk: Buffer) => Packet[] {
  const splitter = createPacketSplitter();
  return (chunk) => splitter.push(chunk).map(decodePacket);
}

function replyError(pkt: Packet, procedure: string): Error {
  if (pkt.header.status !== MessageStatus.ERROR) {
    return new LibvirtProtocolError(`${procedure}: unexpected reply status ${pkt.header.status}`);
  }
  return new LibvirtError(procedure, readRemoteError(new XdrReader(pkt.body)));
}

export const libvirtFraming: Framing<RemoteCall, Packet> = {
  encode: encodeCall,
  decoder: packetDecoder,
  classify({ header }) {
    if (header.prog !== REMOTE_PROGRAM || header.type !== MessageType.REPLY) {
      return { kind: 'event' };
    }
    const kind = header.status === MessageStatus.OK ? 'reply' : 'error';
    return { kind, id: header.serial };
  },
  replyError,
};

/** A packet of the keepalive program (PING or PONG): a MESSAGE with serial 0. */
export function keepalivePacket(proc: number): Buffer {
  return encodePacket({
    prog: KEEPALIVE_PROGRAM,
    vers: KEEPALIVE_PROTOCOL_VERSION,
    proc,
    type: MessageType.MESSAGE,
    serial: 0,
    status: MessageStatus.OK,
  });
}

/** Runs one remote procedure through the session's `call`; `read` decodes its ret. */
export function remoteCall<T>(
  call: LibvirtCall,
  proc: number,
  args: ArgsWriter | undefined,
  read: RetReader<T>,
  opts?: CallOptions,
): Promise<T> {
  const procedure = procName(REMOTE_PROGRAM, proc);
  const decode = (pkt: Packet): T => {
    const r = new XdrReader(pkt.body);
    const v = read(r);
    r.end(procedure);
    return v;
  };
  return call(procedure, { proc, args }, decode, opts);
}
