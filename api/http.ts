/**
 * HTTP plumbing shared by every route: JSON bodies, and errors in the route family's
 * shape (authentication is auth.ts).
 *
 * Invariants: a known path asked with another method is a 405 naming the methods in `Allow`.
 * Every error a client can see — from a route, a hook, fastify's body parsing
 * and routing, or Node's HTTP parser — leaves as an ApiError from the catalogue, in the
 * shape of the request's family (roots.ts), carrying its request id:
 * `{"NeutronError": {type, message, detail}}` by default, `{"<kind>": {code, message}}`
 * under Nova's paths, webob's `{message, code, title}` under Glance's. A JSON body holding a
 * `__proto__` key, or a `constructor` holding a `prototype`, never reaches a route.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { novaError, ReadOnlyAttribute } from '../contracts/compute.ts';
import { ApiError, neutronError } from '../contracts/errors.ts';
import { isPlainObject, ValidationError } from '../contracts/schema.ts';
import type { Logger } from '../core/log.ts';
import { setRequestIdHeaders } from './request-id.ts';
import { type Family, requestFamily } from './roots.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The URL clients reach the API at (configured, never the Host header). */
    publicEndpoint: string;
  }
}

/** The path the client sent (before a service root was stripped), for messages. */
const pathOf = (req: FastifyRequest) => (req.originalUrl ?? req.url).split('?')[0] ?? '/';
/** The path as routed. */
const routedPath = (req: FastifyRequest) => req.url.split('?')[0] ?? '/';

/** Fastify's own errors (body parsing, routing) → the catalogue. */
function fromFastify(err: FastifyError, req: FastifyRequest): ApiError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(
        'RequestEntityTooLarge',
        'Request body is larger than the configured limit.',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        'UnsupportedMediaType',
        `Unsupported Content-Type ${req.headers['content-type'] ?? '(none)'}: request bodies must be application/json.`,
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('BadRequest', 'Request body size did not match Content-Length.');
    case 'FST_ERR_BAD_URL':
      return new ApiError('BadRequest', `Malformed URL: ${err.message}.`);
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError(
        'NotFound',
        `The resource could not be found: ${req.method} ${pathOf(req)}`,
      );
    default:
      if (err.statusCode === 400 || err instanceof SyntaxError)
        return new ApiError('BadRequest', `Malformed request body: ${err.message}`);
      return new ApiError('InternalError', 'Request failed due to an internal error.');
  }
}

/** Anything a route, hook or fastify threw → the catalogue entry, worded for `family`. */
function toApiError(err: unknown, req: FastifyRequest, family: Family): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ValidationError) {
    if (family === 'neutron') return new ApiError('BadRequest', `Invalid input: ${err.message}`);
    return new ApiError(
      'BadRequest',
      err.field
        ? `Invalid input for field/attribute ${err.field}. Value: ${err.reason}`
        : `Invalid input: ${err.reason}`,
    );
  }
  if (err instanceof ReadOnlyAttribute) return new ApiError('PolicyNotAuthorized', err.message);
  return fromFastify(err as FastifyError, req);
}

/** Glance's (webob's) JSON error body: `{"message", "code": "404 Not Found", "title"}`. */
function glanceError(e: ApiError, requestId: string) {
  const title = STATUS_CODES[e.status] ?? 'Error';
  return { message: e.message, code: `${e.status} ${title}`, title, request_id: requestId };
}

/** The error body in `family`'s shape, carrying the request's id. */
export function errorBody(family: Family, e: ApiError, requestId: string) {
  if (family === 'glance') return glanceError(e, requestId);
  if (family === 'keystone')
    return {
      error: { code: e.status, message: e.message, title: STATUS_CODES[e.status] ?? 'Error' },
    };
  const body = (family === 'neutron'
    ? neutronError(e.type, e.message, e.detail)
    : novaError(e.status, e.message)) as unknown as Record<string, Record<string, unknown>>;
  for (const inner of Object.values(body)) inner.request_id = requestId;
  return body;
}

/** The error handler of a scope; without `family`, each request's path decides. */
export function errorHandler(log: Logger, family?: Family) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const fam = family ?? requestFamily(req.raw, req.url);
    const apiErr = toApiError(err, req, fam);
    if (apiErr.status >= 500)
      log.error({ err: err.message, url: req.url, request_id: req.id }, 'request failed');
    setRequestIdHeaders(reply, fam, req.id);
    void reply.status(apiErr.status).send(errorBody(fam, apiErr, req.id));
  };
}

/** The keys prototype poisoning uses, as fastify's parser refused them (secure-json-parse). */
const poisoning = (key: string, value: unknown) =>
  key === '__proto__' ||
  (key === 'constructor' && isPlainObject(value) && Object.hasOwn(value, 'prototype'));

/**
 * A JSON request body. JSON.parse makes `__proto__` an own key (no prototype changes), so
 * the walk can refuse it, and a `constructor` holding a `prototype`, by path before any
 * route merges the object.
 */
export function parseJsonBody(text: string): unknown {
  // A bodiless request with a JSON Content-Type (DELETE, actions): the route decides
  // whether it needed a body, and says which field is missing.
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ApiError('BadRequest', `Malformed request body: ${(e as Error).message}`);
  }
  const stack: [unknown, string][] = [[value, '']];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [node, path] = top;
    if (typeof node !== 'object' || node === null) continue;
    const list = Array.isArray(node);
    for (const [key, child] of Object.entries(node)) {
      const at = list ? `${path}[${key}]` : path ? `${path}.${key}` : key;
      if (!list && poisoning(key, child))
        throw new ValidationError(at, 'is not a recognised attribute');
      stack.push([child, at]);
    }
  }
  return value;
}

function installJsonParser(app: FastifyInstance) {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
}

const patternOf = (url: string) =>
  new RegExp(
    `^${url
      .split('/')
      .map((s) => (s.startsWith(':') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`,
  );

/**
 * 404 for a path no route has, 405 with `Allow` for a known path and another method. The
 * routes are recorded as they are added (onRoute), so every route takes part.
 */
function installNotFound(app: FastifyInstance, fixed?: Family) {
  const routes = new Map<string, { re: RegExp; methods: Set<string> }>();
  app.addHook('onRoute', (route) => {
    const entry = routes.get(route.url) ?? { re: patternOf(route.url), methods: new Set() };
    for (const m of [route.method].flat()) entry.methods.add(m);
    routes.set(route.url, entry);
  });
  app.setNotFoundHandler((req, reply) => {
    const path = pathOf(req);
    const routed = routedPath(req);
    const allowed = new Set<string>();
    for (const { re, methods } of routes.values())
      if (re.test(routed)) for (const m of methods) allowed.add(m);
    const family = fixed ?? requestFamily(req.raw, routed);
    if (allowed.size === 0) {
      const e = new ApiError('NotFound', `The resource could not be found: ${req.method} ${path}`);
      return reply.status(404).send(errorBody(family, e, req.id));
    }
    const allow = [...allowed].sort().join(', ');
    const e = new ApiError(
      'MethodNotAllowed',
      `Method ${req.method} is not allowed on ${path}; allowed: ${allow}.`,
    );
    return reply
      .status(405)
      .header('allow', allow)
      .send(errorBody(family, e, req.id));
  });
}

/** Errors of every route of `app`; `family` fixes their shape (the identity listener). */
export function installErrors(app: FastifyInstance, log: Logger, family?: Family) {
  app.setErrorHandler(errorHandler(log, family));
  installJsonParser(app);
  installNotFound(app, family);
  // While closing, requests on kept-alive connections get a catalogue 503 (fastify's own
  // 503 is turned off in app.ts); fastify adds `Connection: close`.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async () => {
    if (closing) throw new ApiError('ServiceUnavailable', 'kumo-api is shutting down.');
  });
}
