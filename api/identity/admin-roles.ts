/**
 * Keystone v3 roles: `GET/POST /v3/roles`, `GET/PATCH/DELETE /v3/roles/{id}` and the
 * implied-role rules `GET /v3/role_inferences`.
 *
 * Invariants: role names are unique (409); the built-in roles admin, member and reader —
 * whose names every policy check and the fixed rule admin → member → reader (caller.ts)
 * depend on — are neither renamed nor deleted (403); deleting another role revokes the
 * tokens of every (user, project) that held it, in the same transaction.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { expandRoles, ROLE_NAMES } from '../caller.ts';
import type { Queryable } from '../db/index.ts';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  conflict,
  deleteRoute,
  entity,
  invalid,
  listRoute,
  mustExist,
  newId,
  queryValue,
  refuseTakenName,
  selfUrl,
  showRoute,
  text,
} from './admin-common.ts';
import type { IdentityDeps } from './deps.ts';
import { findRoleByName, getRole, type RoleRow } from './lookup.ts';
import type { RevocationEvent } from './revocations.ts';
import { insertRow, listAssignments, listRoles, updateRow } from './store.ts';
import { roleRef, roleView } from './views.ts';

const duplicate = (name: string) => conflict('role', `Duplicate entry found with name ${name}`);

const builtIn = (name: string) => (ROLE_NAMES as readonly string[]).includes(name);

export const existingRole = mustExist('role', getRole);

function roleInput(body: unknown, creating: boolean) {
  const r = entity(body, 'role');
  if (r.domain_id !== undefined && r.domain_id !== null)
    throw invalid('domain_id', 'domain-specific roles are not supported.');
  return {
    name: text(r, 'name', { max: 255, required: creating, name: true }),
    description: text(r, 'description', { max: 255 }),
  };
}

/** The roles `name` implies directly (admin → member, member → reader). */
export function directlyImplied(name: string): string[] {
  const implied = expandRoles([name]).filter((n) => n !== name);
  return implied.filter((n) => !implied.some((m) => m !== n && expandRoles([m]).includes(n)));
}

/** Keystone's role_inferences: one rule per role that implies others. */
function inferences(base: string, roles: RoleRow[]) {
  const byName = new Map(roles.map((r) => [r.name, r]));
  return roles.flatMap((prior) => {
    const implies = directlyImplied(prior.name).flatMap((n) => {
      const r = byName.get(n);
      return r ? [roleRef(base, r)] : [];
    });
    return implies.length ? [{ prior_role: roleRef(base, prior), implies }] : [];
  });
}

function createRoleRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.post('/v3/roles', async (req, reply) => {
    authorize(req, 'create_role');
    const input = roleInput(req.body, true);
    const name = input.name as string;
    const id = newId();
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        if (await findRoleByName(tx, name)) throw duplicate(name);
        await insertRow(tx, 'roles', { id, name, description: input.description ?? '' });
        return { result: await existingRole(tx, id) };
      },
      () => duplicate(name),
    );
    return reply.status(201).send({ role: roleView(base, row) });
  });
}

function updateRoleRoute(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);
  app.patch<{ Params: { id: string } }>('/v3/roles/:id', async (req) => {
    authorize(req, 'update_role');
    const input = roleInput(req.body, false);
    const { id } = req.params;
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        const before = await existingRole(tx, id);
        if (input.name !== undefined && input.name !== before.name && builtIn(before.name))
          throw new ApiError(
            'PolicyNotAuthorized',
            `The built-in role ${before.name} cannot be renamed.`,
          );
        await refuseTakenName(input.name, id, (n) => findRoleByName(tx, n), duplicate);
        await updateRow(tx, 'roles', id, input);
        return { result: await existingRole(tx, id) };
      },
      () => duplicate(input.name ?? ''),
    );
    return { role: roleView(base, row) };
  });
}

/** Deletes a role that is not built in; every (user, project) that held it loses its tokens. */
async function removeRole(tx: Queryable, role: RoleRow): Promise<RevocationEvent[]> {
  if (builtIn(role.name))
    throw new ApiError('PolicyNotAuthorized', `The built-in role ${role.name} cannot be deleted.`);
  const held = await listAssignments(tx, { roleId: role.id, targetType: 'project' });
  await tx.query('DELETE FROM role_assignments WHERE role_id = ?', [role.id]);
  await tx.query('DELETE FROM roles WHERE id = ?', [role.id]);
  return held.map((a) => ({ userId: a.user_id, projectId: a.target_id }));
}

export function roleRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const path = '/v3/roles';
  listRoute(app, deps, {
    path,
    key: 'roles',
    rule: 'list_roles',
    rows: (req) => listRoles(deps.db, { name: queryValue(req, 'name') }),
    view: roleView,
  });
  showRoute(app, deps, { path, key: 'role', rule: 'get_role', load: existingRole, view: roleView });
  app.get('/v3/role_inferences', async (req) => {
    authorize(req, 'list_role_inference_rules');
    return {
      role_inferences: inferences(baseOf(deps), await listRoles(deps.db, {})),
      links: { self: selfUrl(deps, req), previous: null, next: null },
    };
  });
  createRoleRoute(app, deps);
  updateRoleRoute(app, deps);
  deleteRoute(app, deps, { path, rule: 'delete_role', load: existingRole, remove: removeRole });
}
