/**
 * Signed project tokens for policy tests: a real key ring in a temporary directory and
 * kumo-api's real verifier, so a suite can act as any user of any project with any role
 * without the identity service (which has its own suites).
 *
 * Invariant: tokens are signed and checked exactly as in production (tokens.ts,
 * authenticator.ts); only revocation is left out (NO_REVOCATIONS).
 */
import { randomUUID } from 'node:crypto';
import type { Authenticator } from '../../api/caller.ts';
import { localAuthenticator, NO_REVOCATIONS } from '../../api/identity/authenticator.ts';
import { openKeyRing, setupKeys } from '../../api/identity/keys.ts';
import { type KeyRing, newAuditId, signToken } from '../../api/identity/tokens.ts';
import { tempDir } from './env.ts';

export interface TestTokens {
  authenticator: Authenticator;
  /** A token scoped to `project` with `roles` (default member), valid for an hour. */
  token(opts: { project: string; roles?: string[]; user?: string }): string;
  cleanup(): void;
}

export const hexId = () => randomUUID().replaceAll('-', '');

/**
 * A password token signed with `ring`'s primary key for `user` on `project` (null:
 * unscoped) with `roles`, issued now and valid for an hour.
 */
export function signTestToken(
  ring: KeyRing,
  who: { user: string; project: string | null; roles: string[] },
): string {
  const now = Date.now();
  return signToken(
    {
      userId: who.user,
      projectId: who.project,
      roles: who.roles,
      methods: ['password'],
      issuedAt: now,
      expiresAt: now + 3_600_000,
      auditIds: [newAuditId()],
    },
    ring.primary(),
  );
}

export function testTokens(): TestTokens {
  const dir = tempDir();
  setupKeys(dir.path);
  const ring = openKeyRing({ dir: dir.path });
  return {
    authenticator: localAuthenticator({ ring, revocations: NO_REVOCATIONS, now: Date.now }),
    token: ({ project, roles = ['member'], user = hexId() }) =>
      signTestToken(ring, { user, project, roles }),
    cleanup: () => dir.cleanup(),
  };
}
