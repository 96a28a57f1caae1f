/**
 * Keystone v3 domains: `GET/POST /v3/domains`, `GET/PATCH/DELETE /v3/domains/{id}`.
 *
 * Invariants: names are unique (409 in Keystone's words); a domain is deleted only once
 * disabled (403 otherwise, as Keystone), and the Default domain never is — nor is it
 * disabled, since every static project and bootstrap user lives in it; disabling or
 * deleting a domain revokes the tokens of every project and user in it, in the same
 * transaction; deleting takes its projects, users and assignments with it.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { Queryable } from '../db/index.ts';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  conflict,
  deleteRoute,
  enabledFilter,
  entity,
  listRoute,
  mustExist,
  nameDescriptionEnabled,
  newId,
  queryValue,
  refuseTakenName,
  showRoute,
} from './admin-common.ts';
import type { IdentityDeps } from './deps.ts';
import { type DomainRow, findDomainByName, getDomain } from './lookup.ts';
import type { RevocationEvent } from './revocations.ts';
import {
  deleteDomain,
  insertRow,
  listDomains,
  listProjects,
  listUsers,
  updateRow,
} from './store.ts';
import { domainView } from './views.ts';

export const DEFAULT_DOMAIN_ID = 'default';

const duplicate = (name: string) => conflict('domain', `Duplicate entry found with name ${name}`);

const existing = mustExist('domain', getDomain);

/** Revocation events for every project and user of domain `id`. */
async function domainRevocations(q: Queryable, id: string): Promise<RevocationEvent[]> {
  const projects = await listProjects(q, { domain_id: id });
  const users = await listUsers(q, { domain_id: id });
  return [...projects.map((p) => ({ projectId: p.id })), ...users.map((u) => ({ userId: u.id }))];
}

const domainInput = (body: unknown, creating: boolean) =>
  nameDescriptionEnabled(entity(body, 'domain'), creating);

function createDomainRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.post('/v3/domains', async (req, reply) => {
    authorize(req, 'create_domain');
    const input = domainInput(req.body, true);
    const id = newId();
    const name = input.name as string;
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        if (await findDomainByName(tx, name)) throw duplicate(name);
        await insertRow(tx, 'domains', {
          id,
          name,
          description: input.description ?? '',
          enabled: input.enabled ?? true,
          created_at: deps.clock.now().toISOString(),
        });
        return { result: await existing(tx, id) };
      },
      () => duplicate(name),
    );
    return reply.status(201).send({ domain: domainView(base, row) });
  });
}

function updateDomainRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.patch<{ Params: { id: string } }>('/v3/domains/:id', async (req) => {
    authorize(req, 'update_domain');
    const input = domainInput(req.body, false);
    const { id } = req.params;
    if (id === DEFAULT_DOMAIN_ID && input.enabled === false)
      throw new ApiError('PolicyNotAuthorized', 'Cannot disable the default domain.');
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        const before = await existing(tx, id);
        await refuseTakenName(input.name, id, (n) => findDomainByName(tx, n), duplicate);
        await updateRow(tx, 'domains', id, input);
        const disabling = before.enabled && input.enabled === false;
        return {
          result: await existing(tx, id),
          revoke: disabling ? await domainRevocations(tx, id) : [],
        };
      },
      () => duplicate(input.name ?? ''),
    );
    return { domain: domainView(base, row) };
  });
}

/** Deletes a disabled domain other than the default, with its projects and users. */
async function removeDomain(tx: Queryable, d: DomainRow): Promise<RevocationEvent[]> {
  if (d.id === DEFAULT_DOMAIN_ID)
    throw new ApiError('PolicyNotAuthorized', 'Cannot delete the default domain.');
  if (d.enabled)
    throw new ApiError(
      'PolicyNotAuthorized',
      'Cannot delete a domain that is enabled, please disable it first.',
    );
  const gone = await deleteDomain(tx, d.id);
  return [
    ...gone.projects.map((p) => ({ projectId: p })),
    ...gone.users.map((u) => ({ userId: u })),
  ];
}

export function domainRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const path = '/v3/domains';
  listRoute(app, deps, {
    path,
    key: 'domains',
    rule: 'list_domains',
    rows: (req) =>
      listDomains(deps.db, { name: queryValue(req, 'name'), enabled: enabledFilter(req) }),
    view: domainView,
  });
  showRoute(app, deps, {
    path,
    key: 'domain',
    rule: 'get_domain',
    load: existing,
    view: domainView,
  });
  createDomainRoute(app, deps);
  updateDomainRoute(app, deps);
  deleteRoute(app, deps, { path, rule: 'delete_domain', load: existing, remove: removeDomain });
}
