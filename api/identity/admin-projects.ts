/**
 * Keystone v3 projects: `GET/POST /v3/projects`, `GET/PATCH/DELETE /v3/projects/{id}`.
 *
 * Invariants: a project lives in a domain (its parent; no deeper hierarchy, never a domain
 * itself) and its name is unique there (409 in Keystone's words); disabling a project
 * revokes its tokens in the same transaction, and so does deleting it, which also takes
 * its role assignments and quota rows; a member of a project may read that project.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../db/index.ts';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  conflict,
  enabledFilter,
  entity,
  flag,
  invalid,
  notFound,
  queryValue,
  selfUrl,
  text,
} from './admin-common.ts';
import { DEFAULT_DOMAIN_ID } from './admin-domains.ts';
import type { IdentityDeps } from './deps.ts';
import { findProjectByName, getDomain, getProject } from './lookup.ts';
import { deleteProject, insertRow, listProjects, updateRow } from './store.ts';
import { listView, projectView } from './views.ts';

const duplicate = (name: string, domainId: string) =>
  conflict('project', `Duplicate entry found with name ${name} at domain ID ${domainId}`);

export async function existingProject(q: Queryable, id: string) {
  const p = await getProject(q, id);
  if (!p) throw notFound('project', id);
  return p;
}

/** The create body: name, description, enabled, and the domain (domain_id or parent_id). */
function createInput(body: unknown) {
  const p = entity(body, 'project');
  if (p.is_domain !== undefined && p.is_domain !== false)
    throw invalid('is_domain', 'projects acting as domains are not supported.');
  const domainId = text(p, 'domain_id', { max: 64 });
  const parentId = text(p, 'parent_id', { max: 64 });
  if (parentId !== undefined && domainId !== undefined && parentId !== domainId)
    throw invalid('parent_id', 'project hierarchies are not supported: the parent is the domain.');
  return {
    name: text(p, 'name', { max: 64, required: true, name: true }) as string,
    description: text(p, 'description', { max: 65535 }) ?? '',
    enabled: flag(p, 'enabled') ?? true,
    domainId: domainId ?? parentId ?? DEFAULT_DOMAIN_ID,
  };
}

function updateInput(body: unknown) {
  const p = entity(body, 'project');
  for (const fixed of ['domain_id', 'parent_id', 'is_domain'])
    if (p[fixed] !== undefined) throw invalid(fixed, 'is read-only once the project exists.');
  return {
    name: text(p, 'name', { max: 64, name: true }),
    description: text(p, 'description', { max: 65535 }),
    enabled: flag(p, 'enabled'),
  };
}

function createProjectRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.post('/v3/projects', async (req, reply) => {
    authorize(req, 'create_project');
    const input = createInput(req.body);
    const id = randomUUID().replaceAll('-', '');
    const dup = () => duplicate(input.name, input.domainId);
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        if (!(await getDomain(tx, input.domainId))) throw notFound('domain', input.domainId);
        if (await findProjectByName(tx, input.domainId, input.name)) throw dup();
        await insertRow(tx, 'projects', {
          id,
          domain_id: input.domainId,
          name: input.name,
          description: input.description,
          enabled: input.enabled,
          created_at: deps.clock.now().toISOString(),
        });
        return { result: await existingProject(tx, id) };
      },
      dup,
    );
    return reply.status(201).send({ project: projectView(base, row) });
  });
}

function updateProjectRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.patch<{ Params: { id: string } }>('/v3/projects/:id', async (req) => {
    authorize(req, 'update_project');
    const input = updateInput(req.body);
    const { id } = req.params;
    let domainId = '';
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        const before = await existingProject(tx, id);
        domainId = before.domain_id;
        const other =
          input.name === undefined ? undefined : await findProjectByName(tx, domainId, input.name);
        if (other && other.id !== id) throw duplicate(input.name as string, domainId);
        await updateRow(tx, 'projects', id, input);
        const disabling = before.enabled && input.enabled === false;
        return {
          result: await existingProject(tx, id),
          revoke: disabling ? [{ projectId: id }] : [],
        };
      },
      () => duplicate(input.name ?? '', domainId),
    );
    return { project: projectView(base, row) };
  });
}

function deleteProjectRoute(app: FastifyInstance, deps: IdentityDeps) {
  app.delete<{ Params: { id: string } }>('/v3/projects/:id', async (req, reply) => {
    authorize(req, 'delete_project');
    const { id } = req.params;
    await changeAndRevoke(deps, async (tx) => {
      await existingProject(tx, id);
      await deleteProject(tx, id);
      return { result: undefined, revoke: [{ projectId: id }] };
    });
    return reply.status(204).send();
  });
}

export function projectRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);

  app.get('/v3/projects', async (req) => {
    authorize(req, 'list_projects');
    const domainId = queryValue(req, 'domain_id') ?? queryValue(req, 'parent_id');
    const rows = await listProjects(deps.db, {
      name: queryValue(req, 'name'),
      domain_id: domainId,
      enabled: enabledFilter(req),
    });
    const views = queryValue(req, 'is_domain') === 'true' ? [] : rows;
    return listView(
      'projects',
      views.map((p) => projectView(base, p)),
      selfUrl(deps, req),
    );
  });
  app.get<{ Params: { id: string } }>('/v3/projects/:id', async (req) => {
    authorize(req, 'get_project', { project: req.params.id });
    return { project: projectView(base, await existingProject(deps.db, req.params.id)) };
  });
  createProjectRoute(app, deps);
  updateProjectRoute(app, deps);
  deleteProjectRoute(app, deps);
}
