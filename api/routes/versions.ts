/**
 * The version documents every service serves at its root, without a token: Neutron's at
 * `/` and `/networking` (and its collections at `/v2.0`), Nova's list at `/compute` and
 * its v2.1 document at `/v2.1` (`/compute/v2.1`), Glance's 300 Multiple Choices at
 * `/image` and its 200 list at `/versions` (`/image/versions`).
 *
 * Invariants: these are the only routes served without a token (clients discover versions
 * before they authenticate); their links start with the configured public endpoint plus
 * the root the request came through (app.ts), never with the request's Host header.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { COMPUTE_MAX_MINOR, COMPUTE_MIN_MINOR, COMPUTE_UPDATED } from '../microversion.ts';

export const COLLECTIONS = [
  { name: 'agent', collection: 'agents' },
  { name: 'network', collection: 'networks' },
  { name: 'subnet', collection: 'subnets' },
  { name: 'port', collection: 'ports' },
] as const;

/** Glance's API versions Kumo serves: members (2.1), deactivation (2.3); v2.3 is CURRENT. */
export const GLANCE_VERSIONS = ['v2.3', 'v2.2', 'v2.1', 'v2.0'] as const;

const open = { config: { public: true, versionless: true } };
const both = (path: string) => [path, `${path}/`];

const neutronVersions = async (req: FastifyRequest) => ({
  versions: [
    {
      id: 'v2.0',
      status: 'CURRENT',
      links: [{ href: `${req.publicEndpoint}/v2.0/`, rel: 'self' }],
    },
  ],
});

/** Nova's v2.1 entry, in the list (`full` false) or as its own document. */
function novaVersion(req: FastifyRequest, full: boolean) {
  const self = { rel: 'self', href: `${req.publicEndpoint}/v2.1/` };
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: `2.${COMPUTE_MAX_MINOR}`,
    min_version: `2.${COMPUTE_MIN_MINOR}`,
    updated: COMPUTE_UPDATED,
    links: full
      ? [self, { rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' }]
      : [self],
    ...(full
      ? {
          'media-types': [
            {
              base: 'application/json',
              type: 'application/vnd.openstack.compute+json;version=2.1',
            },
          ],
        }
      : {}),
  };
}

const glanceVersions = (req: FastifyRequest) => ({
  versions: GLANCE_VERSIONS.map((id, i) => ({
    id,
    status: i === 0 ? 'CURRENT' : 'SUPPORTED',
    links: [{ rel: 'self', href: `${req.publicEndpoint}/v2/` }],
  })),
});

export function versionRoutes(app: FastifyInstance) {
  app.get('/', open, neutronVersions);
  for (const path of both('/networking')) app.get(path, open, neutronVersions);
  const resources = async (req: FastifyRequest) => ({
    resources: COLLECTIONS.map((c) => ({
      name: c.name,
      collection: c.collection,
      links: [{ href: `${req.publicEndpoint}/v2.0/${c.collection}`, rel: 'self' }],
    })),
  });
  for (const path of both('/v2.0')) app.get(path, open, resources);
  for (const path of both('/compute'))
    app.get(path, open, async (req) => ({ versions: [novaVersion(req, false)] }));
  // Under the versioned API: negotiated and echoed like every compute request.
  for (const path of both('/v2.1'))
    app.get(path, { config: { public: true } }, async (req) => ({
      version: novaVersion(req, true),
    }));
  for (const path of both('/image'))
    app.get(path, open, async (req, reply) => reply.status(300).send(glanceVersions(req)));
  app.get('/versions', open, async (req) => glanceVersions(req));
}
