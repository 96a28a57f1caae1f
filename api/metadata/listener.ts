/**
 * kumo-api's instance metadata listener (Nova's metadata API behind Neutron's proxy): a
 * plain node:http server that answers GET and HEAD for requests a relay signed.
 *
 * Invariants: a request is answered only when it carries X-Instance-ID, X-Tenant-ID and
 * an X-Instance-ID-Signature that matches the shared secret's HMAC of the id (403
 * otherwise), and the instance exists, is not deleted and belongs to X-Tenant-ID (404
 * otherwise); refusals say nothing about any instance; the guest never chooses which
 * instance it reads, the relay does.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { META_HEADERS, signatureMatches } from '../../contracts/metadata.ts';
import { UUID } from '../../contracts/schema.ts';
import type { Logger } from '../../core/log.ts';
import type { Db } from '../db/index.ts';
import { lookup } from './content.ts';
import { loadInstanceData } from './instance-data.ts';

export interface MetadataDeps {
  db: Db;
  /** [metadata] metadata_proxy_shared_secret. */
  secret: string;
  log: Logger;
  /** The clock's date (future OpenStack versions are hidden); now when absent. */
  now?: () => Date;
}

const FORBIDDEN = 'Invalid proxy request signature.';
const NOT_FOUND = 'The resource could not be found.';

function send(res: ServerResponse, status: number, body: string | Buffer, type = 'text/plain') {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, {
    'content-type': `${type}; charset=UTF-8`,
    'content-length': bytes.length,
  });
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}

const header = (req: IncomingMessage, name: string) => {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
};

/** The signed instance id and tenant, or undefined when the request is not signed right. */
function signedCaller(req: IncomingMessage, secret: string) {
  const id = header(req, META_HEADERS.instanceId);
  const tenant = header(req, META_HEADERS.tenantId);
  const signature = header(req, META_HEADERS.signature);
  if (id === undefined || tenant === undefined || signature === undefined) return undefined;
  return signatureMatches(secret, id, signature) ? { id, tenant } : undefined;
}

/** The request path, decoded, without the query string; undefined when it does not decode. */
function pathOf(url: string | undefined): string | undefined {
  try {
    return decodeURIComponent((url ?? '/').split('?')[0] as string);
  } catch {
    return undefined;
  }
}

async function answer(deps: MetadataDeps, req: IncomingMessage, res: ServerResponse) {
  const caller = signedCaller(req, deps.secret);
  if (!caller) {
    deps.log.warn({ remote: req.socket.remoteAddress }, 'metadata request not signed right');
    return send(res, 403, FORBIDDEN);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'The method is not allowed for this resource.');
  }
  const path = pathOf(req.url);
  const data = UUID.test(caller.id) ? await loadInstanceData(deps.db, caller.id) : undefined;
  if (path === undefined || !data || data.record.projectId !== caller.tenant)
    return send(res, 404, NOT_FOUND);
  const today = (deps.now?.() ?? new Date()).toISOString().slice(0, 10);
  const item = lookup(data, path, { today, seed: () => randomBytes(512) });
  if (!item) return send(res, 404, NOT_FOUND);
  return send(res, 200, item.body, item.type);
}

/** The listener (not yet listening): `server.listen(port, host)`. */
export function buildMetadataApp(deps: MetadataDeps): Server {
  return createServer((req, res) => {
    req.resume();
    answer(deps, req, res).catch((err: unknown) => {
      deps.log.error({ err }, 'metadata request failed');
      if (!res.headersSent) send(res, 500, 'An unknown error has occurred.');
      else res.destroy();
    });
  });
}
