/**
 * The operator's dashboard under /dashboard: the page and its files (assets.ts), the login
 * (login.ts), the agents overview (overview.ts) and the live feed (events.ts). Everything
 * else the page shows it reads and changes through the ordinary OpenStack-shaped routes
 * with the viewer's token, the same calls the CLI makes.
 *
 * Invariants: the page, its files and the login are public (there is nothing to protect in
 * them); the overview and the feed need a token like every API route, and agents appear
 * only to admins (Neutron's policy); every answer of /dashboard carries the strict
 * Content-Security-Policy, nosniff and no-referrer.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { AppDeps } from '../deps.ts';
import { type Asset, type DashboardAssets, loadDashboardAssets } from './assets.ts';
import { createEventHub } from './events.ts';
import { login, parseLogin } from './login.ts';
import { agentOverview } from './overview.ts';

const open = { config: { public: true, versionless: true } };
const guarded = { config: { versionless: true } };

/** The feed's route (api/metrics.ts leaves it out of request durations: it lasts minutes). */
const EVENTS_ROUTE = '/dashboard/api/events';
/** Logins being checked with Keystone at once; more are refused (503) until one ends. */
const MAX_LOGINS_IN_FLIGHT = 8;

type Named = FastifyRequest<{ Params: { name: string } }>;

function fileRoutes(app: FastifyInstance, assets: DashboardAssets) {
  app.addHook('onSend', async (req, reply) => {
    if (!req.url.startsWith('/dashboard')) return;
    void reply.header('content-security-policy', assets.csp);
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('referrer-policy', 'no-referrer');
  });
  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset | undefined) => {
    if (!a) return reply.status(404).type('text/plain').send('Not Found');
    void reply.header('etag', a.etag).header('cache-control', 'no-cache');
    if (req.headers['if-none-match'] === a.etag) return reply.status(304).send();
    return reply.type(a.type).send(a.body);
  };
  for (const path of ['/dashboard', '/dashboard/'])
    app.get(path, open, (req, reply) => send(req, reply, assets.index));
  app.get('/dashboard/static/:name', open, (req: Named, reply) =>
    send(req, reply, assets.get('static', req.params.name)),
  );
  app.get('/dashboard/vendor/:name', open, (req: Named, reply) =>
    send(req, reply, assets.get('vendor', req.params.name)),
  );
}

function loginRoute(app: FastifyInstance, authUri: string | undefined) {
  let inFlight = 0;
  app.post('/dashboard/api/login', open, async (req, reply) => {
    const request = parseLogin(req.body);
    if (!authUri) throw new ApiError('ServiceUnavailable', 'No identity service is configured.');
    if (inFlight >= MAX_LOGINS_IN_FLIGHT)
      throw new ApiError('ServiceUnavailable', 'Too many logins at once; try again.');
    inFlight++;
    try {
      const session = await login(authUri, request);
      return reply.status(201).header('cache-control', 'no-store').send(session);
    } finally {
      inFlight--;
    }
  });
}

export function dashboardRoutes(app: FastifyInstance, deps: AppDeps): void {
  const assets = loadDashboardAssets();
  const downTime = deps.settings.agentDownTime;
  const hub = createEventHub({
    db: deps.db,
    log: deps.log.child({ component: 'dashboard' }),
    now: () => deps.clock.now(),
    downTime,
  });
  app.addHook('preClose', async () => hub.close());
  fileRoutes(app, assets);
  loginRoute(app, deps.settings.authUri);
  app.get('/dashboard/api/agents', guarded, async (req) => {
    const now = deps.clock.now();
    const agents = await agentOverview(deps.db, { admin: req.caller.isAdmin, now, downTime });
    return { now: now.toISOString(), agents };
  });
  app.get(EVENTS_ROUTE, guarded, (req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'content-security-policy': assets.csp,
      'x-content-type-options': 'nosniff',
    });
    reply.raw.write(': kumo dashboard feed\n\n');
    hub.attach({ admin: req.caller.isAdmin, res: reply.raw });
  });
}
