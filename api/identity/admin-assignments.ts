/**
 * Keystone v3 role grants and the role-assignment list:
 * `PUT/GET/HEAD/DELETE /v3/{projects|domains}/{t}/users/{u}/roles/{r}`,
 * `GET /v3/{projects|domains}/{t}/users/{u}/roles` and `GET /v3/role_assignments`
 * (filters user.id, scope.project.id, scope.domain.id, role.id; effective; include_names).
 *
 * Invariants: a grant names an existing target, user and role (404 naming the missing
 * one); granting twice is one grant; removing a project grant revokes the user's tokens
 * on that project in the same transaction, so the next request with one is a 401; an
 * effective list adds the roles each assignment implies (links.prior_role naming it),
 * each (user, scope, role) once, direct assignments winning.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { expandRoles } from '../caller.ts';
import type { Queryable } from '../db/index.ts';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  notFound,
  queryTrue,
  queryValue,
  selfUrl,
} from './admin-common.ts';
import { existingRole } from './admin-roles.ts';
import type { IdentityDeps } from './deps.ts';
import { getDomain, getProject, getUser } from './lookup.ts';
import {
  addGrant,
  type Grant,
  hasGrant,
  listAssignments,
  listRoles,
  removeGrant,
} from './store.ts';
import { type AssignmentRow, assignmentView, listView, roleView } from './views.ts';

type Kind = 'projects' | 'domains';
type GrantParams = { target: string; user: string; role?: string };

const targetType = (kind: Kind) => (kind === 'projects' ? 'project' : 'domain');

/** The grant a path names, each part checked to exist. */
async function grantOf(q: Queryable, kind: Kind, p: GrantParams): Promise<Grant> {
  const target = kind === 'projects' ? await getProject(q, p.target) : await getDomain(q, p.target);
  if (!target) throw notFound(targetType(kind), p.target);
  if (!(await getUser(q, p.user))) throw notFound('user', p.user);
  if (p.role !== undefined) await existingRole(q, p.role);
  return { userId: p.user, targetType: targetType(kind), targetId: p.target, roleId: p.role ?? '' };
}

const assignmentMissing = (g: Grant) =>
  new ApiError(
    'NotFound',
    `Could not find role assignment with role: ${g.roleId}, user or group: ${g.userId}, project, domain, or system: ${g.targetId}.`,
  );

function grantRoutes(app: FastifyInstance, deps: IdentityDeps, kind: Kind) {
  const path = `/v3/${kind}/:target/users/:user/roles/:role`;
  app.put<{ Params: Required<GrantParams> }>(path, async (req, reply) => {
    authorize(req, 'create_grant');
    await changeAndRevoke(deps, async (tx) => {
      await addGrant(tx, await grantOf(tx, kind, req.params));
      return { result: undefined };
    });
    return reply.status(204).send();
  });

  app.get<{ Params: Required<GrantParams> }>(path, async (req, reply) => {
    authorize(req, 'check_grant');
    const g = await grantOf(deps.db, kind, req.params);
    if (!(await hasGrant(deps.db, g))) throw assignmentMissing(g);
    return reply.status(204).send();
  });

  app.delete<{ Params: Required<GrantParams> }>(path, async (req, reply) => {
    authorize(req, 'revoke_grant');
    await changeAndRevoke(deps, async (tx) => {
      const g = await grantOf(tx, kind, req.params);
      if (!(await hasGrant(tx, g))) throw assignmentMissing(g);
      await removeGrant(tx, g);
      const revoke =
        g.targetType === 'project' ? [{ userId: g.userId, projectId: g.targetId }] : [];
      return { result: undefined, revoke };
    });
    return reply.status(204).send();
  });
}

function grantListRoute(app: FastifyInstance, deps: IdentityDeps, kind: Kind) {
  app.get<{ Params: GrantParams }>(`/v3/${kind}/:target/users/:user/roles`, async (req) => {
    authorize(req, 'list_grants');
    const g = await grantOf(deps.db, kind, req.params);
    const held = await listAssignments(deps.db, {
      userId: g.userId,
      targetType: g.targetType,
      targetId: g.targetId,
    });
    const ids = new Set(held.map((a) => a.role_id));
    const roles = (await listRoles(deps.db, {})).filter((r) => ids.has(r.id));
    return listView(
      'roles',
      roles.map((r) => roleView(baseOf(deps), r)),
      selfUrl(deps, req),
    );
  });
}

/** Adds the implied roles of every assignment, each (user, scope, role) once. */
async function effective(q: Queryable, rows: AssignmentRow[]): Promise<AssignmentRow[]> {
  const byName = new Map((await listRoles(q, {})).map((r) => [r.name, r]));
  const key = (a: AssignmentRow) => `${a.user_id} ${a.target_type} ${a.target_id} ${a.role_id}`;
  const out = new Map(rows.map((a) => [key(a), a]));
  for (const a of rows) {
    for (const name of expandRoles([a.role_name ?? ''])) {
      const role = byName.get(name);
      if (!role || role.id === a.role_id) continue;
      const implied = { ...a, role_id: role.id, role_name: role.name, prior_role_id: a.role_id };
      if (!out.has(key(implied))) out.set(key(implied), implied);
    }
  }
  return [...out.values()];
}

/** Filters Keystone accepts that name nothing kumo stores (groups, system scope…). */
const NEVER_MATCH = ['group.id', 'scope.system', 'scope.OS-INHERIT:inherited_to'];

async function assignmentList(deps: IdentityDeps, req: FastifyRequest) {
  const q = (k: string) => queryValue(req, k);
  if (NEVER_MATCH.some((k) => q(k) !== undefined)) return [];
  const projectId = q('scope.project.id');
  const domainId = q('scope.domain.id');
  if (projectId !== undefined && domainId !== undefined) return [];
  const direct = await listAssignments(deps.db, {
    userId: q('user.id'),
    ...(projectId !== undefined ? { targetType: 'project', targetId: projectId } : {}),
    ...(domainId !== undefined ? { targetType: 'domain', targetId: domainId } : {}),
  });
  const eff = q('effective');
  const rows = eff !== undefined && queryTrue(eff) ? await effective(deps.db, direct) : direct;
  const roleId = q('role.id');
  return roleId === undefined ? rows : rows.filter((a) => a.role_id === roleId);
}

export function assignmentRoutes(app: FastifyInstance, deps: IdentityDeps) {
  for (const kind of ['projects', 'domains'] as const) {
    grantRoutes(app, deps, kind);
    grantListRoute(app, deps, kind);
  }

  app.get('/v3/role_assignments', async (req) => {
    authorize(req, 'list_role_assignments');
    const names = queryValue(req, 'include_names');
    const withNames = names !== undefined && queryTrue(names);
    const rows = await assignmentList(deps, req);
    return listView(
      'role_assignments',
      rows.map((a) => assignmentView(baseOf(deps), a, withNames)),
      selfUrl(deps, req),
    );
  });
}
