/**
 * Neutron v2.0 security groups: GET/POST /v2.0/security-groups, GET/PUT/DELETE
 * /v2.0/security-groups/{id}; the rules' routes are registered from here too
 * (security-group-rules.ts).
 *
 * Invariants: a body is validated whole before anything is written and a refused request
 * changes nothing (each write is one transaction, api/db/security-groups.ts); a non-admin
 * sees and acts on its own project's groups only (another's is a 404, as a missing one);
 * listing groups or rules makes the caller's project's default group on first use (and, for
 * an admin, the default group of each project its filter names); the name `default` is never given to
 * another group (Neutron's name_not_default); only an admin deletes a default group.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
import {
  type SecurityGroup,
  SecurityGroupCreate,
  SecurityGroupUpdate,
} from '../../contracts/secgroup.ts';
import {
  createGroup,
  deleteGroup,
  GROUP_FILTERS,
  getGroup,
  groupNotFound,
  listGroups,
  updateGroup,
} from '../db/security-groups.ts';
import type { AppDeps } from '../deps.ts';
import { listScope, ownerForCreate, owns } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { sgRulesChanged } from '../sg-hints.ts';
import { isAdmin } from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';
import { ensureListedDefaults, securityGroupRuleRoutes } from './security-group-rules.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

/** The group as the caller may see it, or SecurityGroupNotFound as for a missing one. */
export async function visibleGroup(
  deps: AppDeps,
  req: FastifyRequest,
  id: string,
): Promise<SecurityGroup> {
  const group = UUID.test(id) ? await getGroup(deps.db, id) : undefined;
  if (!group || !owns(req, group.project_id)) throw groupNotFound(id);
  return group;
}

/** Neutron's name_not_default validator (on create and update). */
function refuseDefaultName(name: string | undefined) {
  if (name !== undefined && name.toLowerCase() === 'default')
    throw new ApiError(
      'SecurityGroupDefaultAlreadyExists',
      'Default security group already exists.',
    );
}

function readRoutes(app: FastifyInstance, deps: AppDeps) {
  app.get('/v2.0/security-groups', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'security_group', GROUP_FILTERS);
    await ensureListedDefaults(deps, req);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push({ sql: 'project_id = ?', params: [scope] });
    return page(req, 'security_groups', await listGroups(deps.db, q.filter), q);
  });
  app.get(
    '/v2.0/security-groups/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      security_group: pick(await visibleGroup(deps, req, req.params.id), values(req.query.fields)),
    }),
  );
}

function writeRoutes(app: FastifyInstance, deps: AppDeps) {
  app.post('/v2.0/security-groups', async (req, reply) => {
    const body = SecurityGroupCreate.parse(req.body).security_group;
    refuseDefaultName(body.name);
    const owner = ownerForCreate(req, body);
    const group = await createGroup(
      deps.db,
      { ...body, project_id: owner },
      deps.clock.now(),
      neutronQuota(deps),
    );
    deps.log.info({ securityGroupId: group.id, projectId: owner }, 'security group created');
    return reply.status(201).send({ security_group: group });
  });

  app.put('/v2.0/security-groups/:id', async (req: ById) => {
    const before = await visibleGroup(deps, req, req.params.id);
    const changes = SecurityGroupUpdate.parse(req.body).security_group;
    refuseDefaultName(changes.name);
    const group = await updateGroup(deps.db, before.id, changes, deps.clock.now());
    deps.log.info({ securityGroupId: group.id }, 'security group updated');
    return { security_group: group };
  });

  app.delete('/v2.0/security-groups/:id', async (req: ById, reply) => {
    const group = await visibleGroup(deps, req, req.params.id);
    const touched = await deleteGroup(deps.db, group.id, deps.clock.now(), isAdmin(req));
    deps.log.info({ securityGroupId: group.id, remoteOf: touched }, 'security group deleted');
    if (touched.length) void sgRulesChanged(deps, touched);
    return reply.status(204).send();
  });
}

export function securityGroupRoutes(app: FastifyInstance, deps: AppDeps): void {
  readRoutes(app, deps);
  writeRoutes(app, deps);
  securityGroupRuleRoutes(app, deps);
}
