/**
 * Neutron v2.0 security group rules: GET/POST /v2.0/security-group-rules (one rule, or a
 * bulk `security_group_rules` list), GET/DELETE /v2.0/security-group-rules/{id}; rules are
 * immutable (PUT is refused).
 *
 * Invariants: a rule request is converted and checked whole (contracts/secgroup.ts
 * ruleSpec, in Neutron's order) before the groups it names are looked up, and a refused
 * request changes nothing (a bulk request is all or nothing, of one group and one owner,
 * without two equal rules); the group and the remote group must be ones the caller may
 * see (SecurityGroupNotFound otherwise); a rule belongs to its group's project; every
 * committed create or delete is followed by sgRulesChanged for its group. Listing groups
 * or rules makes the default groups it shows on first use (ensureListedDefaults).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { arr, obj, optional, PROJECT_ID, UUID } from '../../contracts/schema.ts';
import { RuleBody, type RuleSpec, ruleSpec, sameRule } from '../../contracts/secgroup.ts';
import { ensureDefault, getGroup, groupNotFound } from '../db/security-groups.ts';
import {
  createRules,
  deleteRule,
  getRule,
  listRules,
  RULE_FILTERS,
  ruleNotFound,
} from '../db/sg-rules.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId, listScope, ownerForCreate, owns } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { sgRulesChanged } from '../sg-hints.ts';
import { isAdmin } from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

/** Rules one bulk request may carry (Neutron's default quota is 100 rules a project). */
const BULK_MAX = 1000;
const RuleCreate = obj({
  security_group_rule: optional(RuleBody),
  security_group_rules: optional(arr(RuleBody, { max: BULK_MAX })),
});

/** `{security_group_rule}` or `{security_group_rules: [...]}` (bulk), one of them. */
function parseCreate(raw: unknown): { bodies: RuleBody[]; bulk: boolean } {
  const body = RuleCreate.parse(raw);
  if (body.security_group_rule && !body.security_group_rules)
    return { bodies: [body.security_group_rule], bulk: false };
  if (body.security_group_rules?.length && !body.security_group_rule)
    return { bodies: body.security_group_rules, bulk: true };
  throw new ApiError('HTTPBadRequest', 'Resource body required');
}

function refuseDuplicatesInPost(specs: readonly RuleSpec[]) {
  if (specs.some((a, i) => specs.slice(i + 1).some((b) => sameRule(a, b))))
    throw new ApiError(
      'DuplicateSecurityGroupRuleInPost',
      'Duplicate Security Group Rule in POST.',
    );
}

/** Neutron's _validate_single_tenant_and_group: a request's rules name one group, one owner. */
function refuseMixed(req: FastifyRequest, bodies: readonly RuleBody[]) {
  const groups = new Set(bodies.map((b) => b.security_group_id));
  if (groups.size > 1)
    throw new ApiError(
      'SecurityGroupNotSingleGroupRules',
      'Only allowed to update rules for one security profile at a time',
    );
  const owners = new Set(bodies.map((b) => ownerForCreate(req, b)));
  if (owners.size > 1)
    throw new ApiError(
      'SecurityGroupRulesNotSingleTenant',
      'Multiple tenant_ids in bulk security group rule create not allowed',
    );
}

/** The project of the group the rules name (visible, as each remote group). */
async function ruleProject(deps: AppDeps, req: FastifyRequest, specs: readonly RuleSpec[]) {
  for (const spec of specs)
    if (spec.remote_group_id) await namedGroup(deps, req, spec.remote_group_id);
  return (await namedGroup(deps, req, (specs[0] as RuleSpec).security_group_id)).project_id;
}

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

/** The projects whose default group a list makes: the caller's, and an admin's filter's. */
function projectsToEnsure(req: FastifyRequest<{ Querystring: Query }>): string[] {
  const own = [callerProjectId(req)];
  if (!isAdmin(req)) return own;
  const named = [...values(req.query.project_id), ...values(req.query.tenant_id)];
  return [...new Set([...own, ...named.filter((p) => PROJECT_ID.test(p))])];
}

/** Makes the default groups a list of groups or rules shows on first use (as Neutron). */
export async function ensureListedDefaults(
  deps: AppDeps,
  req: FastifyRequest<{ Querystring: Query }>,
) {
  for (const p of projectsToEnsure(req)) await ensureDefault(deps.db, p, deps.clock.now());
}

function readRoutes(app: FastifyInstance, deps: AppDeps) {
  app.get('/v2.0/security-group-rules', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'security_group_rule', RULE_FILTERS);
    await ensureListedDefaults(deps, req);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push({ sql: 'project_id = ?', params: [scope] });
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
    const { bodies, bulk } = parseCreate(req.body);
    const specs = bodies.map(ruleSpec);
    refuseMixed(req, bodies);
    refuseDuplicatesInPost(specs);
    const project = await ruleProject(deps, req, specs);
    const rules = await createRules(deps.db, specs, project, deps.clock.now(), neutronQuota(deps));
    const groups = [...new Set(specs.map((s) => s.security_group_id))];
    deps.log.info(
      { ruleIds: rules.map((r) => r.id), securityGroupIds: groups },
      'security group rules created',
    );
    void sgRulesChanged(deps, groups);
    return reply
      .status(201)
      .send(bulk ? { security_group_rules: rules } : { security_group_rule: rules[0] });
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
