/**
 * Callers from an existing Keystone ([keystone_authtoken]), as keystonemiddleware's
 * auth_token does: kumo-api logs in as its service user, validates each incoming token
 * with `GET /v3/auth/tokens` (X-Subject-Token) and trusts the answer for
 * `token_cache_time` seconds (never past the token's own expiry).
 *
 * Invariants: roles and the project come only from Keystone's answer, never from the
 * request; a token Keystone does not know (404) is refused and that answer is cached
 * too, so a flood of bad tokens costs one validation each per cache period; Keystone
 * unreachable, answering 5xx or anything unreadable, or refusing kumo's own service
 * credentials (401 again after a fresh login, 403) is a 503 (the token may be good),
 * never a 401, and is not cached; the cache
 * holds at most `maxEntries` tokens, keyed by their SHA-256, never the token itself.
 */
import { createHash } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import { type Authenticator, type Caller, expandRoles } from '../caller.ts';

export interface ExternalKeystoneSettings {
  /** The v3 URL, e.g. http://keystone:5000/v3 (no trailing slash needed). */
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
  /** Seconds a validation is trusted. */
  cacheSeconds: number;
  maxEntries?: number;
  timeoutMs?: number;
}

interface Cached {
  caller: Caller | undefined;
  until: number;
}

interface TokenBody {
  token?: {
    expires_at?: string;
    user?: { id?: string; name?: string };
    project?: { id?: string; name?: string };
    roles?: { name?: string }[];
  };
}

/** The caller Keystone's token body describes (only what it says; nothing assumed). */
export function callerOfTokenBody(body: TokenBody): Caller | undefined {
  const t = body.token;
  if (!t?.user?.id) return undefined;
  const roles = expandRoles((t.roles ?? []).map((r) => String(r.name ?? '')).filter(Boolean));
  return {
    kind: 'token',
    userId: t.user.id,
    userName: t.user.name ?? null,
    projectId: t.project?.id ?? null,
    projectName: t.project?.name ?? null,
    roles,
    isAdmin: roles.includes('admin'),
  };
}

export function externalAuthenticator(
  s: ExternalKeystoneSettings,
  now: () => number = Date.now,
): Authenticator {
  const base = s.authUrl.replace(/\/+$/, '');
  const cache = new Map<string, Cached>();
  let service: { token: string; until: number } | undefined;
  const unavailable = (why: string) =>
    new ApiError('ServiceUnavailable', `The identity service cannot validate tokens: ${why}.`);

  const jsonOf = (res: Response): Promise<unknown> =>
    res.json().catch((e: Error) => {
      throw unavailable(`its answer is not JSON (${e.message})`);
    });

  const call = async (path: string, init: RequestInit) => {
    try {
      return await fetch(`${base}${path}`, {
        ...init,
        signal: AbortSignal.timeout(s.timeoutMs ?? 10_000),
      });
    } catch (e) {
      throw unavailable((e as Error).message);
    }
  };

  const serviceToken = async (): Promise<string> => {
    if (service && service.until > now()) return service.token;
    const res = await call('/auth/tokens?nocatalog', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: {
              user: { name: s.username, password: s.password, domain: { name: s.userDomainName } },
            },
          },
          scope: { project: { name: s.projectName, domain: { name: s.projectDomainName } } },
        },
      }),
    });
    const token = res.headers.get('x-subject-token');
    if (res.status !== 201 || !token) {
      await res.body?.cancel();
      throw unavailable(`service login answered ${res.status}`);
    }
    const body = (await jsonOf(res)) as TokenBody;
    const expires = Date.parse(body.token?.expires_at ?? '') || now() + 300_000;
    // Renewed a minute early, so a validation never carries an expired service token.
    service = { token, until: expires - 60_000 };
    return token;
  };

  const validate = async (token: string, retried = false): Promise<Cached> => {
    const res = await call('/auth/tokens?nocatalog', {
      headers: { 'x-auth-token': await serviceToken(), 'x-subject-token': token },
    });
    // A 401 refuses kumo's own service token, not the subject: log in again once; if the
    // fresh one is refused too, the token cannot be judged (keystonemiddleware's
    // ServiceError), never a 401 for the caller.
    if (res.status === 401 && !retried) {
      await res.body?.cancel();
      service = undefined;
      return validate(token, true);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return { caller: undefined, until: now() + s.cacheSeconds * 1000 };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw unavailable(`token validation answered ${res.status}`);
    }
    const body = (await jsonOf(res)) as TokenBody;
    const expires = Date.parse(body.token?.expires_at ?? '') || now();
    return {
      caller: callerOfTokenBody(body),
      until: Math.min(expires, now() + s.cacheSeconds * 1000),
    };
  };

  return {
    async authenticate(token) {
      const key = createHash('sha256').update(token).digest('base64url');
      const hit = cache.get(key);
      if (hit && hit.until > now()) return hit.caller;
      const fresh = await validate(token);
      cache.delete(key);
      if (cache.size >= (s.maxEntries ?? 10_000)) cache.delete(cache.keys().next().value as string);
      if (fresh.until > now()) cache.set(key, fresh);
      return fresh.caller;
    },
  };
}
