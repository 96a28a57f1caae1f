/**
 * The errors a socket session raises, whatever the protocol: a call that got no reply in
 * time, a connection that failed, was lost or closed, and bytes that make no sense. Each
 * protocol client derives its own named classes from these (OvsdbTimeoutError,
 * LibvirtConnectionError, …) so callers can catch either the protocol's class or the
 * session's. Pure: no I/O.
 *
 * Invariant: every message starts with the protocol's label and names what failed (the
 * method for a timeout, the remote for a connection), so a log line alone says which
 * daemon and which call.
 */

/** Why a connection is unusable: the first connect failed, it dropped, we closed it, or
 * it is between reconnects. */
export type ConnectionReason = 'connect-failed' | 'lost' | 'closed' | 'not-connected';

export class SessionTimeoutError extends Error {
  override name = 'SessionTimeoutError';
  readonly method: string;
  readonly timeoutMs: number;
  constructor(label: string, method: string, timeoutMs: number) {
    super(`${label} ${method}: no reply within ${timeoutMs} ms`);
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

export class SessionConnectionError extends Error {
  override name = 'SessionConnectionError';
  readonly reason: ConnectionReason;
  readonly remote: string;
  constructor(label: string, reason: ConnectionReason, remote: string, cause?: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super(`${label} ${remote}: ${reason}${why}`, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.remote = remote;
  }
}

/** A frame or payload the protocol could not make sense of. */
export class SessionProtocolError extends Error {
  override name = 'SessionProtocolError';
}

/** How a session makes its errors: a protocol passes constructors of its own classes. */
export interface SessionErrors<CE extends Error = SessionConnectionError> {
  timeout(method: string, timeoutMs: number): Error;
  connection(reason: ConnectionReason, cause?: unknown): CE;
  protocol(message: string): Error;
}

/** The session's own classes, for a protocol that has no named errors of its own. */
export function sessionErrors(label: string, remote: string): SessionErrors {
  return {
    timeout: (method, ms) => new SessionTimeoutError(label, method, ms),
    connection: (reason, cause) => new SessionConnectionError(label, reason, remote, cause),
    protocol: (message) => new SessionProtocolError(`${label}: ${message}`),
  };
}
