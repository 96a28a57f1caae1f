/**
 * Keystone v3 users: `GET/POST /v3/users`, `GET/PATCH/DELETE /v3/users/{id}`, the
 * self-service `POST /v3/users/{id}/password` and `GET /v3/users/{id}/projects`.
 *
 * Invariants: a password is stored only as its scrypt hash (passwords.ts), hashed before
 * the transaction opens, and never shown; names are unique within a domain (409); a
 * password change, a disable and a delete each revoke the user's tokens in the same
 * transaction. The password change needs no token, as Keystone's: the original password
 * is the proof, and a wrong one (or an unknown or disabled user) is the same 401.
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
  flag,
  invalid,
  listRoute,
  mustExist,
  newId,
  notFound,
  nullableText,
  queryValue,
  refuseTakenName,
  showRoute,
  text,
} from './admin-common.ts';
import { DEFAULT_DOMAIN_ID } from './admin-domains.ts';
import type { IdentityDeps } from './deps.ts';
import { findUserByName, getDomain, getProject, getUser, projectsOfUser } from './lookup.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { deleteUser, insertRow, listUsers, updateRow } from './store.ts';
import { projectView, userView } from './views.ts';

const duplicate = (name: string, domainId: string) =>
  conflict('user', `Duplicate entry found with name ${name} at domain ID ${domainId}`);

const existing = mustExist('user', getUser);

/** The fields create and update share; undefined where the body leaves them out. */
function commonInput(u: Record<string, unknown>, creating: boolean) {
  return {
    name: text(u, 'name', { max: 255, required: creating, name: true }),
    password: nullableText(u, 'password', 4096),
    enabled: flag(u, 'enabled'),
    default_project_id: nullableText(u, 'default_project_id', 64),
    email: nullableText(u, 'email', 255),
    description: text(u, 'description', { max: 65535 }),
  };
}

async function checkDefaultProject(q: Queryable, id: string | null | undefined) {
  if (id && !(await getProject(q, id)))
    throw invalid('default_project_id', `project ${id} does not exist.`);
}

const hashOf = (password: string | null | undefined) =>
  typeof password === 'string' ? hashPassword(password) : Promise.resolve(password);

function createRoute(app: FastifyInstance, deps: IdentityDeps) {
  app.post('/v3/users', async (req, reply) => {
    authorize(req, 'create_user');
    const u = entity(req.body, 'user');
    const input = commonInput(u, true);
    const domainId = text(u, 'domain_id', { max: 64 }) ?? DEFAULT_DOMAIN_ID;
    const name = input.name as string;
    const hash = await hashOf(input.password);
    const id = newId();
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        if (!(await getDomain(tx, domainId))) throw notFound('domain', domainId);
        await checkDefaultProject(tx, input.default_project_id);
        if (await findUserByName(tx, domainId, name)) throw duplicate(name, domainId);
        const now = deps.clock.now().toISOString();
        await insertRow(tx, 'users', {
          id,
          domain_id: domainId,
          name,
          password_hash: hash ?? null,
          enabled: input.enabled ?? true,
          default_project_id: input.default_project_id ?? null,
          email: input.email ?? null,
          description: input.description ?? '',
          password_changed_at: hash ? now : null,
          created_at: now,
        });
        return { result: await existing(tx, id) };
      },
      () => duplicate(name, domainId),
    );
    return reply.status(201).send({ user: userView(baseOf(deps), row) });
  });
}

function updateRoute(app: FastifyInstance, deps: IdentityDeps) {
  app.patch<{ Params: { id: string } }>('/v3/users/:id', async (req) => {
    authorize(req, 'update_user');
    const u = entity(req.body, 'user');
    if (u.domain_id !== undefined) throw invalid('domain_id', 'is read-only once the user exists.');
    const { password, ...input } = commonInput(u, false);
    const hash = await hashOf(password);
    const { id } = req.params;
    let domainId = '';
    const row = await changeAndRevoke(
      deps,
      async (tx) => {
        const before = await existing(tx, id);
        domainId = before.domain_id;
        await checkDefaultProject(tx, input.default_project_id);
        await refuseTakenName(
          input.name,
          id,
          (n) => findUserByName(tx, domainId, n),
          (n) => duplicate(n, domainId),
        );
        const passwordChanged = password !== undefined;
        await updateRow(tx, 'users', id, {
          ...input,
          ...(passwordChanged
            ? { password_hash: hash ?? null, password_changed_at: deps.clock.now().toISOString() }
            : {}),
        });
        const revoke = passwordChanged || (before.enabled && input.enabled === false);
        return { result: await existing(tx, id), revoke: revoke ? [{ userId: id }] : [] };
      },
      () => duplicate(input.name ?? '', domainId),
    );
    return { user: userView(baseOf(deps), row) };
  });
}

/** Keystone's self-service change: `{user: {password, original_password}}`, no token. */
function passwordRoute(app: FastifyInstance, deps: IdentityDeps) {
  app.post<{ Params: { id: string } }>(
    '/v3/users/:id/password',
    { config: { public: true } },
    async (req, reply) => {
      const u = entity(req.body, 'user');
      const original = text(u, 'original_password', { max: 4096, required: true }) as string;
      const password = text(u, 'password', { max: 4096, required: true }) as string;
      const { id } = req.params;
      const user = await getUser(deps.db, id);
      const ok = user?.enabled === true && (await verifyPassword(original, user.password_hash));
      if (!ok)
        throw new ApiError(
          'NotAuthenticated',
          'Error when changing user password: Invalid user / password',
        );
      const hash = await hashPassword(password);
      await changeAndRevoke(deps, async (tx) => {
        const now = deps.clock.now().toISOString();
        await updateRow(tx, 'users', id, { password_hash: hash, password_changed_at: now });
        return { result: undefined, revoke: [{ userId: id }] };
      });
      return reply.status(204).send();
    },
  );
}

export function userRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const path = '/v3/users';
  listRoute(app, deps, {
    path,
    key: 'users',
    rule: 'list_users',
    rows: (req) =>
      listUsers(deps.db, {
        name: queryValue(req, 'name'),
        domain_id: queryValue(req, 'domain_id'),
        enabled: enabledFilter(req),
      }),
    view: userView,
  });
  showRoute(app, deps, {
    path,
    key: 'user',
    rule: 'get_user',
    also: (req) => ({ user: req.params.id }),
    load: existing,
    view: userView,
  });
  listRoute(app, deps, {
    path: `${path}/:id/projects`,
    key: 'projects',
    rule: 'list_user_projects',
    also: (req) => ({ user: req.params.id }),
    rows: async (req) => {
      await existing(deps.db, req.params.id);
      return projectsOfUser(deps.db, req.params.id);
    },
    view: projectView,
  });
  createRoute(app, deps);
  updateRoute(app, deps);
  passwordRoute(app, deps);
  deleteRoute(app, deps, {
    path,
    rule: 'delete_user',
    load: existing,
    remove: async (tx, u) => {
      await deleteUser(tx, u.id);
      return [{ userId: u.id }];
    },
  });
}
