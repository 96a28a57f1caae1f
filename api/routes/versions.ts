/**
 * The version documents Neutron serves at `/` and `/v2.0`, so clients that discover
 * endpoints find one API version and its collections.
 *
 * Invariants: these are the only routes served without a token (clients discover versions
 * before they authenticate); their links start with the configured public endpoint, never
 * with the request's Host header.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const COLLECTIONS = [
  { name: 'agent', collection: 'agents' },
  { name: 'network', collection: 'networks' },
  { name: 'subnet', collection: 'subnets' },
  { name: 'port', collection: 'ports' },
] as const;

const open = { config: { public: true } };

export function versionRoutes(app: FastifyInstance) {
  app.get('/', open, async (req) => ({
    versions: [
      {
        id: 'v2.0',
        status: 'CURRENT',
        links: [{ href: `${req.publicEndpoint}/v2.0/`, rel: 'self' }],
      },
    ],
  }));
  const resources = async (req: FastifyRequest) => ({
    resources: COLLECTIONS.map((c) => ({
      name: c.name,
      collection: c.collection,
      links: [{ href: `${req.publicEndpoint}/v2.0/${c.collection}`, rel: 'self' }],
    })),
  });
  app.get('/v2.0', open, resources);
  app.get('/v2.0/', open, resources);
}
