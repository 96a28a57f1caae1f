/**
 * Keystone v3 roles: `GET/POST /v3/roles`, `GET/PATCH/DELETE /v3/roles/{id}` and the
 * implied-role rules `GET /v3/role_inferences`.
 *
 * Invariants: role names are unique (409); the built-in roles admin, member and reader —
 * whose names every policy check and the fixed rule admin → member → reader (caller.ts)
 * depend on — are neither renamed nor deleted (403); deleting another role revokes the
 * tokens of every (user, project) that held it, in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { expandRoles, ROLE_NAMES } from '../caller.ts';
import type { Queryable } from '../db/index.ts';
import {
  authorize,
  baseOf,
  changeAndRevoke,
  conflict,
  entity,
  invalid,
  notFound,
  queryValue,
  selfUrl,
  text,
} from './admin-common.ts';
import type { IdentityDeps } from './deps.ts';
import { findRoleByName, getRole, type RoleRow } from './lookup.ts';
import { insertRow, listAssignments, listRoles, updateRow } from './store.ts';
import { listView, roleRef, roleView } from './views.ts';

const duplicate = (name: string) => conflict('role', `Duplicate entry found with name ${name}`);

const builtIn = (name: string) => (ROLE_NAMES as readonly string[]).includes(name);

export async function existingRole(q: Queryable, id: string) {
  const r = await getRole(q, id);
  if (!r) throw notFound('role', id);
  return r;
}

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
    const id = randomUUID().replaceAll('-', '');
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
        const other = input.name === undefined ? undefined : await findRoleByName(tx, input.name);
        if (other && other.id !== id) throw duplicate(input.name as string);
        await updateRow(tx, 'roles', id, input);
        return { result: await existingRole(tx, id) };
      },
      () => duplicate(input.name ?? ''),
    );
    return { role: roleView(base, row) };
  });
}

function deleteRoleRoute(app: FastifyInstance, deps: IdentityDeps) {
  app.delete<{ Params: { id: string } }>('/v3/roles/:id', async (req, reply) => {
    authorize(req, 'delete_role');
    const { id } = req.params;
    await changeAndRevoke(deps, async (tx) => {
      const role = await existingRole(tx, id);
      if (builtIn(role.name))
        throw new ApiError(
          'PolicyNotAuthorized',
          `The built-in role ${role.name} cannot be deleted.`,
        );
      const held = await listAssignments(tx, { roleId: id, targetType: 'project' });
      await tx.query('DELETE FROM role_assignments WHERE role_id = ?', [id]);
      await tx.query('DELETE FROM roles WHERE id = ?', [id]);
      return {
        result: undefined,
        revoke: held.map((a) => ({ userId: a.user_id, projectId: a.target_id })),
      };
    });
    return reply.status(204).send();
  });
}

export function roleRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const base = baseOf(deps);

  app.get('/v3/roles', async (req) => {
    authorize(req, 'list_roles');
    const rows = await listRoles(deps.db, { name: queryValue(req, 'name') });
    return listView(
      'roles',
      rows.map((r) => roleView(base, r)),
      selfUrl(deps, req),
    );
  });

  app.get<{ Params: { id: string } }>('/v3/roles/:id', async (req) => {
    authorize(req, 'get_role');
    return { role: roleView(base, await existingRole(deps.db, req.params.id)) };
  });

  app.get('/v3/role_inferences', async (req) => {
    authorize(req, 'list_role_inference_rules');
    return {
      role_inferences: inferences(base, await listRoles(deps.db, {})),
      links: { self: selfUrl(deps, req), previous: null, next: null },
    };
  });

  createRoleRoute(app, deps);
  updateRoleRoute(app, deps);
  deleteRoleRoute(app, deps);
}
