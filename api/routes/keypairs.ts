/**
 * Nova's os-keypairs (nova/api/openstack/compute/keypairs.py, 2.1-2.16): create (import a
 * public key, or generate an RSA 2048 pair and answer its private key once), list, show
 * and delete, at the endpoint root and under /v2.1.
 *
 * Invariants: key pairs are their user's: every route acts on the caller's own unless an
 * admin names another user (`user_id`, 2.10+; Nova's policy answers 403 to anyone else),
 * and another user's key pair is Nova's 404. A create is checked whole — body, name,
 * public key, quota, name taken — before its one insert, so a refused one stores
 * nothing. The private key of a generated pair is never stored or logged. Shapes and codes
 * follow the microversion: `type` from 2.2, 201/204 from 2.2 (200/202 at 2.1).
 */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import {
  invalidKeypair,
  KeypairCreate21,
  KeypairCreate22,
  KeypairCreate210,
  type KeypairRequest,
  keypairNameProblem,
  opensshRsa,
  sshFingerprint,
  x509Fingerprint,
} from '../../contracts/keypairs.ts';
import { ValidationError } from '../../contracts/schema.ts';
import {
  deleteKeypair,
  getKeypair,
  insertKeypair,
  type KeypairRow,
  listKeypairs,
  type NewKeypair,
} from '../db/keypairs.ts';
import { projectQuotas } from '../db/quotas.ts';
import type { AppDeps } from '../deps.ts';
import { atLeast } from '../microversion.ts';
import { callerProjectId } from '../policy.ts';
import { values } from '../query.ts';
import { installNovaErrors, requireAdminNova } from './nova.ts';
import { novaDefaults } from './nova-quota-rules.ts';

type ByName = FastifyRequest<{ Params: { name: string }; Querystring: Record<string, unknown> }>;

/** The comment of a generated public key. */
export const GENERATED_COMMENT = 'Generated-by-Kumo';

/** Whose key pairs a request acts on: the caller's (as servers record it), or from 2.10
 * the `user_id` an admin names (anyone else naming another user: Nova's 403). */
export const callerUserId = (req: FastifyRequest) => req.caller.userId ?? req.role;
function targetUser(req: FastifyRequest, named: string | undefined, action: string): string {
  const own = callerUserId(req);
  if (named === undefined || !atLeast(req, 10) || named === own) return own;
  requireAdminNova(req, `os_compute_api:os-keypairs:${action}`);
  return named;
}
const queryUser = (req: ByName) => values(req.query.user_id as string | string[])[0];

const notFound = (name: string, userId: string) =>
  new ApiError('NotFound', `Keypair ${name} not found for user ${userId}`);

/** Nova's shows: the list's and create's keys, `type` from 2.2. */
const typed = (req: FastifyRequest, k: KeypairRow) => (atLeast(req, 2) ? { type: k.type } : {});
const listed = (req: FastifyRequest, k: KeypairRow) => ({
  name: k.name,
  public_key: k.public_key,
  fingerprint: k.fingerprint,
  ...typed(req, k),
});
const shown = (req: FastifyRequest, k: KeypairRow) => ({
  ...listed(req, k),
  user_id: k.user_id,
  created_at: `${k.created_at.slice(0, 19)}.000000`,
  updated_at: null,
  deleted_at: null,
  deleted: false,
  id: k.seq,
});

function parseCreate(req: FastifyRequest): KeypairRequest {
  const schema = atLeast(req, 10)
    ? KeypairCreate210
    : atLeast(req, 2)
      ? KeypairCreate22
      : KeypairCreate21;
  const body: KeypairRequest = schema.parse(req.body).keypair;
  const problem = keypairNameProblem(body.name);
  if (problem) throw new ApiError('BadRequest', problem);
  return body;
}

const generateRsa = promisify(generateKeyPair);

/** Nova's create_key_pair: RSA 2048, the private key in PEM (PKCS#1), the public in OpenSSH. */
async function generated(type: string) {
  if (type === 'x509')
    throw new ApiError(
      'BadRequest',
      invalidKeypair('Kumo imports x509 certificates but does not generate them'),
    );
  const { publicKey, privateKey } = await generateRsa('rsa', {
    modulusLength: 2048,
    publicExponent: 65537,
  });
  const jwk = publicKey.export({ format: 'jwk' });
  const n = Buffer.from(jwk.n ?? '', 'base64url');
  const e = Buffer.from(jwk.e ?? '', 'base64url');
  const line = opensshRsa(n, e, GENERATED_COMMENT);
  const pem = privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
  return { public_key: line, fingerprint: sshFingerprint(line), private_key: pem };
}

/** The public key, fingerprint (and private key, when generated) of a create. */
async function keyMaterial(
  body: KeypairRequest,
  type: string,
): Promise<{ public_key: string; fingerprint: string; private_key?: string }> {
  if (body.public_key === undefined) return generated(type);
  try {
    const fp = type === 'x509' ? x509Fingerprint(body.public_key) : sshFingerprint(body.public_key);
    return { public_key: body.public_key, fingerprint: fp };
  } catch (e) {
    if (e instanceof ValidationError) throw new ApiError('BadRequest', e.reason);
    throw e;
  }
}

async function create(deps: AppDeps, req: FastifyRequest, reply: FastifyReply) {
  const body = parseCreate(req);
  const userId = targetUser(req, body.user_id, 'create');
  const type = body.type ?? 'ssh';
  const { private_key, ...material } = await keyMaterial(body, type);
  const projectId = callerProjectId(req);
  const limit = (await projectQuotas(deps.db, projectId, novaDefaults(deps))).key_pairs ?? -1;
  const created_at = deps.clock.now().toISOString();
  const k: NewKeypair = { user_id: userId, name: body.name, type, ...material, created_at };
  const out = await deps.db.transaction((tx) =>
    insertKeypair(tx, deps.db.engine, { ...k, projectId, limit }),
  );
  if ('refused' in out && out.refused === 'quota')
    throw new ApiError('QuotaExceeded', 'Quota exceeded, too many key pairs.');
  if ('refused' in out) throw new ApiError('Conflict', `Key pair '${body.name}' already exists.`);
  deps.log.info(
    { userId, keypair: body.name, generated: private_key !== undefined },
    'key pair created',
  );
  const answer = {
    ...listed(req, out.row),
    user_id: userId,
    ...(private_key === undefined ? {} : { private_key }),
  };
  return reply.status(atLeast(req, 2) ? 201 : 200).send({ keypair: answer });
}

function scopeRoutes(scope: FastifyInstance, deps: AppDeps) {
  installNovaErrors(scope, deps.log);
  scope.post('/os-keypairs', (req, reply) => create(deps, req, reply));
  scope.get('/os-keypairs', async (req: ByName) => {
    const userId = targetUser(req, queryUser(req), 'index');
    const rows = await listKeypairs(deps.db, userId);
    return { keypairs: rows.map((k) => ({ keypair: listed(req, k) })) };
  });
  scope.get('/os-keypairs/:name', async (req: ByName) => {
    const userId = targetUser(req, queryUser(req), 'show');
    const k = await getKeypair(deps.db, userId, req.params.name);
    if (!k) throw notFound(req.params.name, userId);
    return { keypair: shown(req, k) };
  });
  scope.delete('/os-keypairs/:name', async (req: ByName, reply) => {
    const userId = targetUser(req, queryUser(req), 'delete');
    if (!(await deleteKeypair(deps.db, userId, req.params.name)))
      throw notFound(req.params.name, userId);
    deps.log.info({ userId, keypair: req.params.name }, 'key pair deleted');
    return reply.status(atLeast(req, 2) ? 204 : 202).send();
  });
}

export function keypairRoutes(app: FastifyInstance, deps: AppDeps): void {
  for (const prefix of ['', '/v2.1'])
    void app.register(async (scope) => scopeRoutes(scope, deps), { prefix });
}
