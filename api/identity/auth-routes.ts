/**
 * Keystone v3 authentication on the identity listener: version discovery (`GET /`,
 * `GET /v3`), token issue (`POST /v3/auth/tokens`, password or token method), validation
 * and revocation (`GET`/`HEAD`/`DELETE` with X-Subject-Token), and what a token may see:
 * `/v3/auth/catalog`, `/v3/auth/projects`, `/v3/auth/domains`; the catalog's own routes
 * are auth-catalog.ts.
 *
 * Invariants: tokens are signed with the ring's primary key and expire after
 * [identity] token_expiration (clock from deps); an invalid, expired or revoked subject
 * token is a 404 ("Could not find token"), as Keystone's; a caller validates or revokes
 * only its own tokens unless it is an admin (or holds Keystone's `service` role); a
 * revocation commits with its event and this replica reloads its list before it answers
 * 204, so the revoked token is refused here at once (and on other replicas as soon as
 * their NOTIFY arrives).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { parseAuthRequest } from './auth-body.ts';
import { catalogRoutes, listLinks } from './auth-catalog.ts';
import { authenticate, subjectOf } from './auth-issue.ts';
import { buildCatalog, tokenCatalog } from './catalog.ts';
import type { IdentityDeps } from './deps.ts';
import { projectsOfUser } from './lookup.ts';
import { tokenBody } from './token-view.ts';
import { signToken, type TokenClaims, verifyToken } from './tokens.ts';

const PUBLIC = { config: { public: true } } as const;

/** Keystone v3.14's version entry (the Ussuri API keystone still reports). */
const versionOf = (base: string) => ({
  id: 'v3.14',
  status: 'stable',
  updated: '2020-04-07T00:00:00Z',
  links: [{ rel: 'self', href: `${base}/v3/` }],
  'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
});

const wantsCatalog = (req: FastifyRequest) =>
  !Object.hasOwn((req.query ?? {}) as object, 'nocatalog');

function subjectHeader(req: FastifyRequest): string {
  const h = req.headers['x-subject-token'];
  const token = Array.isArray(h) ? h[0] : h;
  if (!token)
    throw new ApiError(
      'BadRequest',
      "Invalid input for field 'X-Subject-Token': the header is missing.",
    );
  return token;
}

const notFound = (token: string) => new ApiError('NotFound', `Could not find token: ${token}.`);

interface Ctx {
  deps: IdentityDeps;
  base: string;
  catalog: ReturnType<typeof buildCatalog>;
  nowMs: () => number;
}

function versionRoutes(app: FastifyInstance, { base }: Ctx) {
  app.get('/', PUBLIC, async (_req, reply) =>
    reply.status(300).send({ versions: { values: [versionOf(base)] } }),
  );
  for (const path of ['/v3', '/v3/'])
    app.get(path, PUBLIC, async () => ({ version: versionOf(base) }));
}

function issueRoute(app: FastifyInstance, { deps, catalog, nowMs }: Ctx) {
  app.post('/v3/auth/tokens', PUBLIC, async (req, reply) => {
    const request = parseAuthRequest(req.body);
    const ctx = {
      ring: deps.ring,
      revocations: deps.revocations,
      nowMs: nowMs(),
      expiration: deps.settings.tokenExpiration,
    };
    const { claims, subject } = await authenticate(deps.db, request, ctx);
    const token = signToken(claims, deps.ring.primary());
    return reply
      .status(201)
      .header('x-subject-token', token)
      .send(tokenBody(claims, subject, wantsCatalog(req) ? catalog : undefined));
  });
}

/**
 * The subject token's claims, when the caller may see it; 404 / 403 otherwise. The
 * database is asked too (an external kumo-api trusts this answer for its cache period).
 */
async function subjectClaims(
  { deps, nowMs }: Ctx,
  req: FastifyRequest,
  action: string,
): Promise<TokenClaims> {
  const token = subjectHeader(req);
  const v = verifyToken(token, deps.ring, nowMs());
  if (!v.ok || deps.revocations.isRevoked(v.claims)) throw notFound(token);
  const c = req.caller;
  if (!c.isAdmin && !c.roles.includes('service') && c.userId !== v.claims.userId)
    throw new ApiError(
      'PolicyNotAuthorized',
      `You are not authorized to perform the requested action: identity:${action}.`,
    );
  if (await deps.revocations.isRevokedNow(deps.db, v.claims)) throw notFound(token);
  return v.claims;
}

function subjectRoutes(app: FastifyInstance, ctx: Ctx) {
  const { deps, catalog } = ctx;
  app.get('/v3/auth/tokens', async (req, reply) => {
    const claims = await subjectClaims(ctx, req, 'validate_token');
    const subject = await subjectOf(deps.db, claims);
    if (!subject) throw notFound(subjectHeader(req));
    return reply
      .header('x-subject-token', subjectHeader(req))
      .send(tokenBody(claims, subject, wantsCatalog(req) ? catalog : undefined));
  });
  app.delete('/v3/auth/tokens', async (req, reply: FastifyReply) => {
    const claims = await subjectClaims(ctx, req, 'revoke_token');
    const id = await deps.db.transaction((tx) =>
      deps.revocations.record(tx, { auditId: claims.auditIds[0] as string }),
    );
    await deps.revocations.commit([id]);
    return reply.status(204).send();
  });
}

function scopeRoutes(app: FastifyInstance, { deps, base, catalog }: Ctx) {
  app.get('/v3/auth/catalog', async (req) => {
    if (req.caller.projectId === null)
      throw new ApiError(
        'PolicyNotAuthorized',
        'A project-scoped token is required to produce a service catalog.',
      );
    return {
      catalog: tokenCatalog(catalog, req.caller.projectId),
      links: listLinks(base, 'auth/catalog'),
    };
  });
  app.get('/v3/auth/projects', async (req) => {
    const userId = req.caller.userId;
    const rows = userId ? await projectsOfUser(deps.db, userId) : [];
    const projects = rows.map((p) => ({
      id: p.id,
      name: p.name,
      domain_id: p.domain_id,
      description: p.description,
      enabled: p.enabled,
      is_domain: false,
      parent_id: p.domain_id,
      tags: [],
      links: { self: `${base}/v3/projects/${p.id}` },
    }));
    return { projects, links: listLinks(base, 'auth/projects') };
  });
  // kumo issues no domain-scoped tokens, so a token can be scoped to no domain.
  app.get('/v3/auth/domains', async () => ({
    domains: [],
    links: listLinks(base, 'auth/domains'),
  }));
}

export function authRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const ctx: Ctx = {
    deps,
    base: deps.settings.endpoints.identity.replace(/\/+$/, ''),
    catalog: buildCatalog(deps.settings),
    nowMs: () => deps.clock.now().getTime(),
  };
  versionRoutes(app, ctx);
  issueRoute(app, ctx);
  subjectRoutes(app, ctx);
  scopeRoutes(app, ctx);
  catalogRoutes(app, deps);
}
