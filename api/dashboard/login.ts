/**
 * The dashboard's login: a user name, password and project, checked by the identity
 * service kumo-api trusts (its own Keystone v3 listener, or [keystone_authtoken] auth_url)
 * with Keystone's password method, so the page needs no second origin and no credentials
 * of its own.
 *
 * Invariants: every field is validated here with a message naming it (strings of bounded
 * length without control characters) before anything is sent; Keystone's answer decides
 * alone (its refusals stay refusals, 400 or 401; an unreachable or confused Keystone is a
 * 503); redirects are not followed; the password is never logged or returned.
 */
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';

export interface LoginRequest {
  username: string;
  password: string;
  project: string;
  domain: string;
}

export interface Session {
  token: string;
  expires_at: string;
  user: string;
  project: { id: string; name: string };
  roles: string[];
}

const FIELDS = ['username', 'password', 'project', 'domain'] as const;
const CONTROL = /[\u0000-\u001f\u007f]/;

export function parseLogin(body: unknown): LoginRequest {
  if (!isPlainObject(body))
    throw new ApiError('BadRequest', 'Invalid input: the body must be a JSON object.');
  const unknown = Object.keys(body).filter((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown.length) throw new ApiError('BadRequest', `Unrecognized field(s) '${unknown}'`);
  const field = (name: (typeof FIELDS)[number], fallback?: string) => {
    const v = body[name] ?? fallback;
    if (typeof v !== 'string' || v.length === 0 || v.length > 255 || CONTROL.test(v))
      throw new ApiError(
        'BadRequest',
        `Invalid input for field '${name}': must be a string of 1 to 255 characters without control characters.`,
      );
    return v;
  };
  return {
    username: field('username'),
    password: field('password'),
    project: field('project'),
    domain: field('domain', 'Default'),
  };
}

/** Keystone's v3 root for `authUri` (kumo-api's listener has no /v3 on its endpoint). */
export const keystoneV3 = (authUri: string) => {
  const base = authUri.replace(/\/+$/, '');
  return base.endsWith('/v3') ? base : `${base}/v3`;
};

function authBody(r: LoginRequest) {
  const domain = { name: r.domain };
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: r.username, domain, password: r.password } },
      },
      scope: { project: { name: r.project, domain } },
    },
  };
}

/** Keystone's refusals, as the dashboard answers them (anything else: 503). */
const REFUSED: Record<number, [code: 'BadRequest' | 'NotAuthenticated', message: string]> = {
  400: ['BadRequest', 'The identity service refused the request as malformed.'],
  401: ['NotAuthenticated', 'The user name, password or project is not valid.'],
  403: ['NotAuthenticated', 'The user may not log in to that project.'],
  404: ['NotAuthenticated', 'The user name, password or project is not valid.'],
};

interface TokenBody {
  token: {
    expires_at: string;
    user: { name: string };
    project: { id: string; name: string };
    roles: { name: string }[];
  };
}

async function askKeystone(authUri: string, r: LoginRequest): Promise<Response> {
  try {
    return await fetch(`${keystoneV3(authUri)}/auth/tokens?nocatalog`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(authBody(r)),
      // A redirect would send the password on to wherever it points.
      redirect: 'error',
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new ApiError('ServiceUnavailable', `The identity service is unreachable: ${e}`);
  }
}

export async function login(authUri: string, r: LoginRequest): Promise<Session> {
  const res = await askKeystone(authUri, r);
  if (res.status !== 201) {
    await res.body?.cancel();
    const refused = REFUSED[res.status];
    if (refused) throw new ApiError(...refused);
    throw new ApiError('ServiceUnavailable', `The identity service answered ${res.status}.`);
  }
  const token = res.headers.get('x-subject-token');
  const t = ((await res.json().catch(() => ({}))) as Partial<TokenBody>).token;
  if (!token || !t?.project || !Array.isArray(t.roles))
    throw new ApiError('ServiceUnavailable', 'The identity service answered without a token.');
  return {
    token,
    expires_at: t.expires_at,
    user: t.user.name,
    project: { id: t.project.id, name: t.project.name },
    roles: t.roles.map((role) => role.name),
  };
}
