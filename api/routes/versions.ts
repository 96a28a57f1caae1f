/**
 * The version documents Neutron serves at `/` and `/v2.0`, so clients that discover
 * endpoints find one API version and its collections.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? req.hostname}`;
}

export const COLLECTIONS = [
  { name: 'agent', collection: 'agents' },
  { name: 'network', collection: 'networks' },
  { name: 'subnet', collection: 'subnets' },
  { name: 'port', collection: 'ports' },
] as const;

export function versionRoutes(app: FastifyInstance) {
  app.get('/', async (req) => ({
    versions: [
      { id: 'v2.0', status: 'CURRENT', links: [{ href: `${base(req)}/v2.0/`, rel: 'self' }] },
    ],
  }));
  const resources = async (req: FastifyRequest) => ({
    resources: COLLECTIONS.map((c) => ({
      name: c.name,
      collection: c.collection,
      links: [{ href: `${base(req)}/v2.0/${c.collection}`, rel: 'self' }],
    })),
  });
  app.get('/v2.0', resources);
  app.get('/v2.0/', resources);
}
