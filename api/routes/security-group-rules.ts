/**
 * Neutron v2.0 security group rules: GET/POST /v2.0/security-group-rules, GET/DELETE
 * /v2.0/security-group-rules/{id}; rules are immutable (PUT is refused).
 *
 * Invariants: a rule request is converted and checked whole (contracts/secgroup.ts
 * ruleSpec, in Neutron's order) before the groups it names are looked up, and a refused
 * request changes nothing; the group and the remote group must be ones the caller may
 * see (SecurityGroupNotFound otherwise); a rule belongs to its group's project; every
 * committed create or delete is followed by sgRulesChanged for its group.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { obj, UUID } from '../../contracts/schema.ts';
import { RuleBody, ruleSpec } from '../../contracts/secgroup.ts';
import { getGroup, groupNotFound } from '../db/security-groups.ts';
import {
  createRule,
  deleteRule,
  getRule,
  listRules,
  RULE_FILTERS,
  ruleNotFound,
} from '../db/sg-rules.ts';
import type { AppDeps } from '../deps.ts';
import { listScope, ownerForCreate, owns } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { sgRulesChanged } from '../sg-hints.ts';
import { neutronQuota } from './neutron-quotas.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

const RuleCreate = obj({ security_group_rule: RuleBody });

async function visibleRule(deps: AppDeps, req: FastifyRequest, id: string) {
  const rule = UUID.test(id) ? await getRule(deps.db, id) : undefined;
  if (!rule || !owns(req, rule.project_id)) throw ruleNotFound(id);
  return rule;
}

/** The group `id` if the caller may see it; else SecurityGroupNotFound. */
async function namedGroup(deps: AppDeps, req: FastifyRequest, id: string) {
  const group = await getGroup(deps.db, id);
  if (!group || !owns(req, group.project_id)) throw groupNotFound(id);
  return group;
}

function readRoutes(app: FastifyInstance, deps: AppDeps) {
  app.get('/v2.0/security-group-rules', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'security_group_rule', RULE_FILTERS);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.columns.project_id = [scope];
    return page(req, 'security_group_rules', await listRules(deps.db, q.filter), q);
  });
  app.get(
    '/v2.0/security-group-rules/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      security_group_rule: pick(
        await visibleRule(deps, req, req.params.id),
        values(req.query.fields),
      ),
    }),
  );
}

function writeRoutes(app: FastifyInstance, deps: AppDeps) {
  app.post('/v2.0/security-group-rules', async (req, reply) => {
    const body = RuleCreate.parse(req.body).security_group_rule;
    const spec = ruleSpec(body);
    ownerForCreate(req, body);
    if (spec.remote_group_id) await namedGroup(deps, req, spec.remote_group_id);
    const group = await namedGroup(deps, req, spec.security_group_id);
    const rule = await createRule(
      deps.db,
      spec,
      group.project_id,
      deps.clock.now(),
      neutronQuota(deps),
    );
    deps.log.info({ ruleId: rule.id, securityGroupId: group.id }, 'security group rule created');
    void sgRulesChanged(deps, [group.id]);
    return reply.status(201).send({ security_group_rule: rule });
  });

  app.put('/v2.0/security-group-rules/:id', async (req: ById) => {
    await visibleRule(deps, req, req.params.id);
    throw new ApiError('MethodNotAllowed', 'Security group rules cannot be updated.');
  });

  app.delete('/v2.0/security-group-rules/:id', async (req: ById, reply) => {
    const rule = await visibleRule(deps, req, req.params.id);
    await deleteRule(deps.db, rule.id, deps.clock.now());
    deps.log.info(
      { ruleId: rule.id, securityGroupId: rule.security_group_id },
      'security group rule deleted',
    );
    void sgRulesChanged(deps, [rule.security_group_id]);
    return reply.status(204).send();
  });
}

export function securityGroupRuleRoutes(app: FastifyInstance, deps: AppDeps): void {
  readRoutes(app, deps);
  writeRoutes(app, deps);
}
