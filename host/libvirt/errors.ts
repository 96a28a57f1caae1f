/**
 * The errors of the libvirt client. `LibvirtError` is libvirtd's own answer, with its
 * numeric code/domain/level unchanged so callers branch on libvirt's documented values;
 * the others are the socket session's errors under libvirt's names (they extend the
 * session's classes, so either can be caught). Pure: no I/O.
 *
 * Invariant: every error names the procedure (REMOTE_PROC_…) or the socket it is about.
 */
import {
  type ConnectionReason,
  SessionConnectionError,
  SessionProtocolError,
  SessionTimeoutError,
} from '../session/errors.ts';
import type { RemoteError } from './protocol.ts';

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

export class LibvirtTimeoutError extends SessionTimeoutError {
  override name = 'LibvirtTimeoutError';
  /** The REMOTE_PROC_… (or KEEPALIVE_PROC_PING) name of the call; also in `method`. */
  readonly procedure: string;
  constructor(procedure: string, timeoutMs: number) {
    super('libvirt', procedure, timeoutMs);
    this.procedure = procedure;
  }
}

/** A packet or payload we could not make sense of. */
export class LibvirtProtocolError extends SessionProtocolError {
  override name = 'LibvirtProtocolError';
}

export type LibvirtConnectionReason = ConnectionReason;

export class LibvirtConnectionError extends SessionConnectionError {
  override name = 'LibvirtConnectionError';
  /** The unix socket path; also in `remote`. */
  readonly socket: string;
  constructor(reason: LibvirtConnectionReason, socket: string, cause?: unknown) {
    super('libvirt', reason, socket, cause);
    this.socket = socket;
  }
}
