/**
 * How the agents classify a failure for the reconciler (core/reconciler.ts).
 *
 * Invariant: a daemon's socket briefly away (a lost or refused connection, a call that
 * timed out: host/session's error classes, whichever client raised them) is a
 * TransientError, retried without an ERROR; a value that failed validation (a contract
 * schema, a device name) is a PermanentError, since retrying cannot make it valid; every
 * other error keeps its class (a CommandError is reported and retried).
 */
import { PermanentError, TransientError } from '../../contracts/errors.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { asError } from '../../core/reconciler.ts';
import { InvalidNameError } from '../../host/ip/names.ts';
import { SessionConnectionError, SessionTimeoutError } from '../../host/session/errors.ts';

export function classify(e: unknown): Error {
  const err = asError(e);
  if (err instanceof SessionConnectionError || err instanceof SessionTimeoutError)
    return new TransientError(err.message, { cause: err });
  if (err instanceof ValidationError || err instanceof InvalidNameError)
    return new PermanentError(err.message, { cause: err });
  return err;
}
