/**
 * kumo-api's own Keystone tokens as callers: verify the signature and expiry with the key
 * ring, then ask the revocation list.
 *
 * Invariant: no database read per request — the ring and the revocation list are both in
 * memory (revocations.ts keeps its list current on every replica).
 */
import { type Authenticator, type Caller, expandRoles } from '../caller.ts';
import { type KeyRing, type TokenClaims, verifyToken } from './tokens.ts';

export interface RevocationCheck {
  isRevoked(claims: TokenClaims): boolean;
}

/** Nothing revoked: for tests of policy that issue their own tokens. */
export const NO_REVOCATIONS: RevocationCheck = { isRevoked: () => false };

export function callerOfClaims(claims: TokenClaims): Caller {
  const roles = expandRoles(claims.roles);
  return {
    kind: 'token',
    userId: claims.userId,
    userName: null,
    projectId: claims.projectId,
    projectName: null,
    roles,
    isAdmin: roles.includes('admin'),
  };
}

export function localAuthenticator(opts: {
  ring: KeyRing;
  revocations: RevocationCheck;
  now: () => number;
}): Authenticator {
  return {
    authenticate(token) {
      const v = verifyToken(token, opts.ring, opts.now());
      if (!v.ok || opts.revocations.isRevoked(v.claims)) return undefined;
      return callerOfClaims(v.claims);
    },
  };
}
