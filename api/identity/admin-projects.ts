/**
 * Keystone v3 projects: `GET/POST /v3/projects`, `GET/PATCH/DELETE /v3/projects/{id}`.
 *
 * Invariants: a project lives in a domain (its parent; no deeper hierarchy, never a domain
 * itself) and its name is unique there (409 in Keystone's words); disabling a project
 * revokes its tokens in the same transaction, and so does deleting it, which also takes
 * its role assignments and quota rows; a member of a project may read that project.
 */
import type { FastifyInstance } from 'fastify';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  conflict,
  deleteRoute,
  enabledFilter,
  entity,
  invalid,
  listRoute,
  mustExist,
  nameDescriptionEnabled,
  newId,
  notFound,
  queryValue,
  refuseTakenName,
  showRoute,
  text,
} from './admin-common.ts';
import { DEFAULT_DOMAIN_ID } from './admin-domains.ts';
import type { IdentityDeps } from './deps.ts';
import { findProjectByName, getDomain, getProject } from './lookup.ts';
import { deleteProject, insertRow, listProjects, updateRow } from './store.ts';
import { projectView } from './views.ts';

const duplicate = (name: string, domainId: string) =>
  conflict('project', `Duplicate entry found with name ${name} at domain ID ${domainId}`);

export const existingProject = mustExist('project', getProject);

/** The create body: name, description, enabled, and the domain (domain_id or parent_id). */
function createInput(body: unknown) {
  const p = entity(body, 'project');
  if (p.is_domain !== undefined && p.is_domain !== false)
    throw invalid('is_domain', 'projects acting as domains are not supported.');
  const domainId = text(p, 'domain_id', { max: 64 });
  const parentId = text(p, 'parent_id', { max: 64 });
  if (parentId !== undefined && domainId !== undefined && parentId !== domainId)
    throw invalid('parent_id', 'project hierarchies are not supported: the parent is the domain.');
  const fields = nameDescriptionEnabled(p, true);
  return {
    name: fields.name as string,
    description: fields.description ?? '',
    enabled: fields.enabled ?? true,
    domainId: domainId ?? parentId ?? DEFAULT_DOMAIN_ID,
  };
}

function updateInput(body: unknown) {
  const p = entity(body, 'project');
  for (const fixed of ['domain_id', 'parent_id', 'is_domain'])
    if (p[fixed] !== undefined) throw invalid(fixed, 'is read-only once the project exists.');
  return nameDescriptionEnabled(p, false);
}

function createProjectRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.post('/v3/projects', async (req, reply) => {
    authorize(req, 'create_project');
    const input = createInput(req.body);
    const id = newId();
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
        await refuseTakenName(
          input.name,
          id,
          (n) => findProjectByName(tx, domainId, n),
          (n) => duplicate(n, domainId),
        );
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

export function projectRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const path = '/v3/projects';
  listRoute(app, deps, {
    path,
    key: 'projects',
    rule: 'list_projects',
    rows: async (req) => {
      const rows = await listProjects(deps.db, {
        name: queryValue(req, 'name'),
        domain_id: queryValue(req, 'domain_id') ?? queryValue(req, 'parent_id'),
        enabled: enabledFilter(req),
      });
      return queryValue(req, 'is_domain') === 'true' ? [] : rows;
    },
    view: projectView,
  });
  showRoute(app, deps, {
    path,
    key: 'project',
    rule: 'get_project',
    also: (req) => ({ project: req.params.id }),
    load: existingProject,
    view: projectView,
  });
  createProjectRoute(app, deps);
  updateProjectRoute(app, deps);
  deleteRoute(app, deps, {
    path,
    rule: 'delete_project',
    load: existingProject,
    remove: async (tx, p) => {
      await deleteProject(tx, p.id);
      return [{ projectId: p.id }];
    },
  });
}
