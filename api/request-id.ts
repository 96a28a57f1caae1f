/**
 * Request ids, as oslo.middleware gives every OpenStack response: `req-<uuid>` in
 * `X-OpenStack-Request-ID`, and also in `X-Compute-Request-ID` on Nova's family.
 *
 * Invariants: the id is made by the API (fastify's genReqId), never taken from the
 * client; the headers are set before authentication runs, so every answer — 401s, 404s,
 * 405s and the raw answers to requests Node's parser refused — carries one; each request
 * is logged once, when answered, with its id, and error bodies carry the same id.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '../core/log.ts';
import { type Family, requestFamily } from './roots.ts';

export const newRequestId = () => `req-${randomUUID()}`;

/** The request-id header lines of a raw HTTP answer, each ending in CRLF. */
export function requestIdLines(family: Family, id: string): string {
  const compute = family === 'nova' ? `X-Compute-Request-ID: ${id}\r\n` : '';
  return `X-OpenStack-Request-ID: ${id}\r\n${compute}`;
}

/** The id's headers on a reply of `family`. */
export function setRequestIdHeaders(reply: FastifyReply, family: Family, id: string) {
  void reply.header('x-openstack-request-id', id);
  if (family === 'nova') void reply.header('x-compute-request-id', id);
}

/** The headers on every answer, and one log line per request with its id. */
export function installRequestIds(app: FastifyInstance, log: Logger) {
  const http = log.child({ component: 'http' });
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-openstack-request-id', req.id);
    if (requestFamily(req.raw, req.url) === 'nova')
      void reply.header('x-compute-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    http.info(
      {
        request_id: req.id,
        method: req.method,
        url: req.originalUrl ?? req.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });
}
