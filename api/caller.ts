/**
 * Who is asking: the caller every route decides by, built once per request from its
 * X-Auth-Token by an Authenticator (the static tokens of kumo.conf, kumo-api's own signed
 * Keystone tokens, or an external Keystone).
 *
 * Invariant: a route reads identity only from `req.caller` (http.ts sets it before any
 * route runs); `roles` already holds the implied roles (admin ⊃ member ⊃ reader), so a
 * check for one role never has to know the hierarchy.
 */
import { DEFAULT_PROJECT_ID } from '../contracts/network.ts';

export const ROLE_NAMES = ['admin', 'member', 'reader'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

/** What each role implies, as Keystone's default implied roles: admin → member → reader. */
const IMPLIES: Record<string, readonly string[]> = {
  admin: ['member', 'reader'],
  member: ['reader'],
};

/** `names` with every role they imply, sorted, each once. */
export function expandRoles(names: readonly string[]): string[] {
  const out = new Set<string>();
  for (const n of names) {
    out.add(n);
    for (const implied of IMPLIES[n] ?? []) out.add(implied);
  }
  return [...out].sort();
}

export interface Caller {
  /**
   * 'token': a Keystone token (kumo-api's or an external Keystone's); 'static': a token of
   * [api] admin_token / member_tokens; 'service': [api] service_token (image reads).
   */
  kind: 'token' | 'static' | 'service';
  userId: string | null;
  userName: string | null;
  /** The project the token is scoped to; null for an unscoped or domain-scoped token. */
  projectId: string | null;
  projectName: string | null;
  /** Role names, implied ones included. */
  roles: readonly string[];
  isAdmin: boolean;
}

/** Turns a token into its caller; undefined when the token is not valid (401). */
export interface Authenticator {
  authenticate(token: string): Caller | undefined | Promise<Caller | undefined>;
}

/** The caller of a static kumo.conf token: scoped to the default project, as before. */
export function staticCaller(role: 'admin' | 'member' | 'service'): Caller {
  const roles = role === 'service' ? [] : expandRoles([role]);
  return {
    kind: role === 'service' ? 'service' : 'static',
    userId: null,
    userName: null,
    projectId: DEFAULT_PROJECT_ID,
    projectName: null,
    roles,
    isAdmin: role === 'admin',
  };
}

/** The coarse role routes branch on: admin, member (may write), reader, or service. */
export type Role = 'admin' | 'member' | 'reader' | 'service';

export function roleOfCaller(c: Caller): Role {
  if (c.kind === 'service') return 'service';
  if (c.isAdmin) return 'admin';
  return c.roles.includes('member') ? 'member' : 'reader';
}
