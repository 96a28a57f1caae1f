/**
 * What every Keystone admin route shares: the policy check (Keystone's defaults,
 * simplified), request-body reading with Keystone's 400s, its 404/409 wording, the
 * change-then-revoke transaction, and the list, show and delete routes every resource
 * (domains, projects, users, roles) serves the same way.
 *
 * Invariants: a route checks policy before it reads or writes anything, so a refused
 * request changes nothing; a body is validated whole before the transaction starts; a
 * change that must revoke tokens records its revocation events in the same transaction,
 * and the list is refreshed before the route answers, so a token the change revokes is
 * refused by the very next request on any replica.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';
import type { Queryable } from '../db/index.ts';
import { constraintKind } from '../db/neutron.ts';
import type { IdentityDeps } from './deps.ts';
import type { RevocationEvent } from './revocations.ts';
import { type Base, listView } from './views.ts';

/** Who else than an admin may pass a rule: the user itself, or a member of the project. */
export interface Also {
  user?: string;
  project?: string;
}

/** Keystone's policy: the admin role (or [api] admin_token) for everything, plus `also`. */
export function authorize(req: FastifyRequest, rule: string, also: Also = {}) {
  const c = req.caller;
  if (c.isAdmin) return;
  if (also.user !== undefined && c.userId === also.user) return;
  if (also.project !== undefined && c.projectId === also.project) return;
  throw new ApiError(
    'PolicyNotAuthorized',
    `You are not authorized to perform the requested action: identity:${rule}.`,
  );
}

export const notFound = (kind: string, id: string) =>
  new ApiError('NotFound', `Could not find ${kind}: ${id}.`);

export const conflict = (kind: string, details: string) =>
  new ApiError('Conflict', `Conflict occurred attempting to store ${kind} - ${details}.`);

/** A fresh Keystone id: a UUID's 32 hex digits. */
export const newId = () => randomUUID().replaceAll('-', '');

/** Reads a row by id, refusing a missing one with Keystone's 404 for `kind`. */
export type Loader<Row> = (q: Queryable, id: string) => Promise<Row>;

export function mustExist<Row>(
  kind: string,
  get: (q: Queryable, id: string) => Promise<Row | undefined>,
): Loader<Row> {
  return async (q, id) => {
    const row = await get(q, id);
    if (!row) throw notFound(kind, id);
    return row;
  };
}

/** Refuses renaming row `id` to `name` when another row (`find`) already holds it. */
export async function refuseTakenName(
  name: string | undefined,
  id: string,
  find: (name: string) => Promise<{ id: string } | undefined>,
  duplicate: (name: string) => ApiError,
) {
  if (name === undefined) return;
  const other = await find(name);
  if (other && other.id !== id) throw duplicate(name);
}

export const invalid = (field: string, reason: string) =>
  new ApiError('BadRequest', `Invalid input for field '${field}': ${reason}`);

/** The object under `key` of a JSON body (`{"project": {...}}`). */
export function entity(body: unknown, key: string): Record<string, unknown> {
  const inner = isPlainObject(body) ? body[key] : undefined;
  if (!isPlainObject(inner)) throw invalid(key, `'${key}' is a required property.`);
  return inner;
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/** A string field: undefined when absent (or `required` refuses), bounded, no controls. */
export function text(
  obj: Record<string, unknown>,
  field: string,
  opts: { max: number; required?: boolean; name?: boolean },
): string | undefined {
  const v = obj[field];
  if (v === undefined) {
    if (opts.required) throw invalid(field, `'${field}' is a required property.`);
    return undefined;
  }
  if (typeof v !== 'string') throw invalid(field, `${JSON.stringify(v)} is not of type 'string'.`);
  if (v.length > opts.max) throw invalid(field, `is longer than ${opts.max} characters.`);
  if (opts.name && (v.trim() === '' || CONTROL.test(v)))
    throw invalid(field, 'must be a non-empty name without control characters.');
  return v;
}

/** The fields domains and projects share: name (≤ 64), description, enabled. */
export function nameDescriptionEnabled(obj: Record<string, unknown>, creating: boolean) {
  return {
    name: text(obj, 'name', { max: 64, required: creating, name: true }),
    description: text(obj, 'description', { max: 65535 }),
    enabled: flag(obj, 'enabled'),
  };
}

/** A string field that may also be null (null clears it). */
export function nullableText(obj: Record<string, unknown>, field: string, max: number) {
  return obj[field] === null ? null : text(obj, field, { max });
}

export function flag(obj: Record<string, unknown>, field: string): boolean | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean')
    throw invalid(field, `${JSON.stringify(v)} is not of type 'boolean'.`);
  return v;
}

/** Keystone's boolean query filters: '0' and 'false' are false, anything else true. */
export const queryTrue = (v: string) => !['0', 'false'].includes(v.toLowerCase());

/** An optional `?<key>=` filter's single value. */
export function queryValue(req: FastifyRequest, key: string): string | undefined {
  const v = (req.query as Record<string, string | string[] | undefined>)[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** The `enabled` filter of a list, as Keystone reads it. */
export function enabledFilter(req: FastifyRequest): boolean | undefined {
  const v = queryValue(req, 'enabled');
  return v === undefined ? undefined : queryTrue(v);
}

/** The identity endpoint links are built from (configured, never the Host header). */
export const baseOf = (deps: IdentityDeps) => deps.settings.endpoints.identity;

/** The request's own URL, for a list's `links.self`. */
export const selfUrl = (deps: IdentityDeps, req: FastifyRequest) => `${baseOf(deps)}${req.url}`;

/**
 * Runs `change` in one transaction, records the revocation events it returns in that
 * transaction, then commits them (revocations.ts: they cover the commit's moment, and the
 * list is reloaded) before the route answers. A unique-constraint
 * failure (a concurrent create with the same name) becomes `onDuplicate`.
 */
export async function changeAndRevoke<T>(
  deps: IdentityDeps,
  change: (tx: Queryable) => Promise<{ result: T; revoke?: RevocationEvent[] }>,
  onDuplicate?: () => ApiError,
): Promise<T> {
  const ids: string[] = [];
  let out: T;
  try {
    out = await deps.db.transaction(async (tx) => {
      const { result, revoke = [] } = await change(tx);
      for (const event of revoke) ids.push(await deps.revocations.record(tx, event));
      return result;
    });
  } catch (e) {
    if (onDuplicate && constraintKind(e) === 'unique') throw onDuplicate();
    throw e;
  }
  await deps.revocations.commit(ids);
  return out;
}

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

/** A read route: its path, its policy rule (and whoever else `also` lets in), its view. */
interface ReadSpec<Row> {
  path: string;
  rule: string;
  also?: (req: IdRequest) => Also;
  /** The body key the view stands under. */
  key: string;
  view: (base: Base, row: Row) => unknown;
}

/**
 * `GET path`: the policy check, then `rows` — which reads the filters and may refuse — as
 * Keystone's list under `key`, linked to the request's URL.
 */
export function listRoute<Row>(
  app: FastifyInstance,
  deps: IdentityDeps,
  spec: ReadSpec<Row> & { rows: (req: IdRequest) => Promise<Row[]> },
) {
  const base = baseOf(deps);
  app.get<{ Params: { id: string } }>(spec.path, async (req) => {
    authorize(req, spec.rule, spec.also?.(req));
    const rows = await spec.rows(req);
    return listView(
      spec.key,
      rows.map((r) => spec.view(base, r)),
      selfUrl(deps, req),
    );
  });
}

/** `GET path/:id`: the policy check, then the row (Keystone's 404) under `key`. */
export function showRoute<Row>(
  app: FastifyInstance,
  deps: IdentityDeps,
  spec: ReadSpec<Row> & { load: Loader<Row> },
) {
  const base = baseOf(deps);
  app.get<{ Params: { id: string } }>(`${spec.path}/:id`, async (req) => {
    authorize(req, spec.rule, spec.also?.(req));
    return { [spec.key]: spec.view(base, await spec.load(deps.db, req.params.id)) };
  });
}

/**
 * `DELETE path/:id`: policy `rule`, then one transaction that loads the row (Keystone's
 * 404) and hands it to `remove`, which may refuse, deletes, and returns the revocation
 * events the deletion calls for; 204.
 */
export function deleteRoute<Row>(
  app: FastifyInstance,
  deps: IdentityDeps,
  spec: {
    path: string;
    rule: string;
    load: Loader<Row>;
    remove: (tx: Queryable, row: Row) => Promise<RevocationEvent[]>;
  },
) {
  app.delete<{ Params: { id: string } }>(`${spec.path}/:id`, async (req, reply) => {
    authorize(req, spec.rule);
    const { id } = req.params;
    await changeAndRevoke(deps, async (tx) => {
      const row = await spec.load(tx, id);
      return { result: undefined, revoke: await spec.remove(tx, row) };
    });
    return reply.status(204).send();
  });
}
