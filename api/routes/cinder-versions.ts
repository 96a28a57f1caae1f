/**
 * Cinder's version documents, served without a token: its 300 Multiple Choices list at
 * `/volume` (and `/volume/`), and v3's own document at `/v3/` (`/volume/v3/`), negotiated
 * and echoed like every volume request.
 *
 * Invariant: links start with the configured public endpoint plus the root the request
 * came through (app.ts), never with the request's Host header; the versions shown are
 * cinder-version.ts's range, so a client negotiates exactly what the routes serve.
 */
import type { FastifyInstance } from 'fastify';
import { VOLUME_MAX_MINOR, VOLUME_MIN_MINOR, VOLUME_UPDATED } from '../cinder-version.ts';

/** Cinder's v3 entry (cinder/api/versions.py _MIN/_MAX_API_VERSION, views/versions.py). */
function v3Entry(root: string) {
  return {
    id: 'v3.0',
    status: 'CURRENT',
    version: `3.${VOLUME_MAX_MINOR}`,
    min_version: `3.${VOLUME_MIN_MINOR}`,
    updated: VOLUME_UPDATED,
    links: [
      { rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' },
      { rel: 'self', href: `${root}/v3/` },
    ],
    'media-types': [
      { base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' },
    ],
  };
}

export function cinderVersionRoutes(app: FastifyInstance) {
  const open = { config: { public: true, versionless: true } };
  for (const path of ['/volume', '/volume/'])
    app.get(path, open, async (req, reply) =>
      reply.status(300).send({ versions: [v3Entry(req.publicEndpoint)] }),
    );
  // Under the versioned API: negotiated and echoed like every volume request.
  for (const path of ['/v3', '/v3/'])
    app.get(path, { config: { public: true } }, async (req) => ({
      versions: [v3Entry(req.publicEndpoint)],
    }));
}
