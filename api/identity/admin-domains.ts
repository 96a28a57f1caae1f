/**
 * Keystone v3 domains: `GET/POST /v3/domains`, `GET/PATCH/DELETE /v3/domains/{id}`.
 *
 * Invariants: names are unique (409 in Keystone's words); a domain is deleted only once
 * disabled (403 otherwise, as Keystone), and the Default domain never is — nor is it
 * disabled, since every static project and bootstrap user lives in it; disabling or
 * deleting a domain revokes the tokens of every project and user in it, in the same
 * transaction; deleting takes its projects, users and assignments with it.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { Queryable } from '../db/index.ts';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  conflict,
  enabledFilter,
  entity,
  flag,
  notFound,
  queryValue,
  selfUrl,
  text,
} from './admin-common.ts';
import type { IdentityDeps } from './deps.ts';
import { findDomainByName, getDomain } from './lookup.ts';
import type { RevocationEvent } from './revocations.ts';
import {
  deleteDomain,
  insertRow,
  listDomains,
  listProjects,
  listUsers,
  updateRow,
} from './store.ts';
import { domainView, listView } from './views.ts';

export const DEFAULT_DOMAIN_ID = 'default';

const duplicate = (name: string) => conflict('domain', `Duplicate entry found with name ${name}`);

async function existing(q: Queryable, id: string) {
  const d = await getDomain(q, id);
  if (!d) throw notFound('domain', id);
  return d;
}

/** Revocation events for every project and user of domain `id`. */
async function domainRevocations(q: Queryable, id: string): Promise<RevocationEvent[]> {
  const projects = await listProjects(q, { domain_id: id });
  const users = await listUsers(q, { domain_id: id });
  return [...projects.map((p) => ({ projectId: p.id })), ...users.map((u) => ({ userId: u.id }))];
}

function domainInput(body: unknown, creating: boolean) {
  const d = entity(body, 'domain');
  return {
    name: text(d, 'name', { max: 64, required: creating, name: true }),
    description: text(d, 'description', { max: 65535 }),
    enabled: flag(d, 'enabled'),
  };
}

function createDomainRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.post('/v3/domains', async (req, reply) => {
    authorize(req, 'create_domain');
    const input = domainInput(req.body, true);
    const id = randomUUID().replaceAll('-', '');
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
        const other = input.name === undefined ? undefined : await findDomainByName(tx, input.name);
        if (other && other.id !== id) throw duplicate(input.name as string);
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

function deleteDomainRoute(app: FastifyInstance, deps: IdentityDeps) {
  app.delete<{ Params: { id: string } }>('/v3/domains/:id', async (req, reply) => {
    authorize(req, 'delete_domain');
    const { id } = req.params;
    await changeAndRevoke(deps, async (tx) => {
      const d = await existing(tx, id);
      if (id === DEFAULT_DOMAIN_ID)
        throw new ApiError('PolicyNotAuthorized', 'Cannot delete the default domain.');
      if (d.enabled)
        throw new ApiError(
          'PolicyNotAuthorized',
          'Cannot delete a domain that is enabled, please disable it first.',
        );
      const gone = await deleteDomain(tx, id);
      return {
        result: undefined,
        revoke: [
          ...gone.projects.map((p) => ({ projectId: p })),
          ...gone.users.map((u) => ({ userId: u })),
        ],
      };
    });
    return reply.status(204).send();
  });
}

export function domainRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);

  app.get('/v3/domains', async (req) => {
    authorize(req, 'list_domains');
    const rows = await listDomains(deps.db, {
      name: queryValue(req, 'name'),
      enabled: enabledFilter(req),
    });
    return listView(
      'domains',
      rows.map((d) => domainView(base, d)),
      selfUrl(deps, req),
    );
  });
  app.get<{ Params: { id: string } }>('/v3/domains/:id', async (req) => {
    authorize(req, 'get_domain');
    return { domain: domainView(base, await existing(deps.db, req.params.id)) };
  });
  createDomainRoute(app, deps);
  updateDomainRoute(app, deps);
  deleteDomainRoute(app, deps);
}
