/**
 * Neutron v2.0 agent management: GET/PUT/DELETE /v2.0/agents[/{id}].
 *
 * Invariants: only admin_state_up and description can change; a request naming any other
 * attribute is refused whole (400) and changes nothing; an admin-state change is pushed to
 * the agent's host queue so it resyncs at once instead of at its next periodic resync.
 * Agents are admin-only as in Neutron (get_agent): a non-admin lists none (200, empty) and
 * every agent is to it as a missing one (404 AgentNotFound, nothing changed).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AGENT_READ_ONLY, type Agent, AgentUpdate } from '../../contracts/agents.ts';
import { ApiError } from '../../contracts/errors.ts';
import { hostQueue } from '../../contracts/messages.ts';
import { isPlainObject, UUID } from '../../contracts/schema.ts';
import { type AgentFilter, deleteAgent, getAgent, listAgents, updateAgent } from '../db/agents.ts';
import type { AppDeps } from '../deps.ts';
import { parseValue, pick, type Query, values } from '../query.ts';
import { removeTunnelEndpoint } from '../tunnels.ts';
import { isAdmin } from './neutron-policy.ts';

const TEXT_FILTERS = ['id', 'agent_type', 'binary', 'topic', 'host', 'availability_zone'] as const;
const BOOL_FILTERS = ['admin_state_up', 'alive'] as const;

const parseBool = (field: string, raw: string) => parseValue(field, 'bool', raw) as boolean;

/** Query string → DB filter, alive filter and field selection; unknown keys are refused. */
export function parseAgentQuery(query: Query) {
  const filter: AgentFilter = {};
  let alive: boolean[] = [];
  for (const key of Object.keys(query)) {
    if (
      key !== 'fields' &&
      !(TEXT_FILTERS as readonly string[]).includes(key) &&
      !(BOOL_FILTERS as readonly string[]).includes(key)
    ) {
      throw new ApiError(
        'BadRequest',
        `Invalid filter: '${key}' is not a filterable attribute of agent.`,
      );
    }
  }
  for (const key of TEXT_FILTERS) {
    const v = values(query[key]);
    if (v.length) filter[key] = v;
  }
  const admin = values(query.admin_state_up).map((v) => parseBool('admin_state_up', v));
  if (admin.length) filter.admin_state_up = admin;
  alive = values(query.alive).map((v) => parseBool('alive', v));
  const fields = values(query.fields);
  return { filter, alive, fields };
}

/** Checks attribute names first, with Neutron's messages, then types via the contract. */
export function parseAgentUpdate(body: unknown) {
  if (!isPlainObject(body) || !isPlainObject(body.agent)) {
    throw new ApiError(
      'BadRequest',
      "Invalid input: the body must be an object with an 'agent' object.",
    );
  }
  const keys = Object.keys(body.agent);
  const readOnly = keys.filter((k) => (AGENT_READ_ONLY as readonly string[]).includes(k));
  if (readOnly.length)
    throw new ApiError('BadRequest', `Cannot update read-only attribute ${readOnly.join(', ')}`);
  const unknown = keys.filter((k) => k !== 'admin_state_up' && k !== 'description');
  if (unknown.length)
    throw new ApiError('BadRequest', `Unrecognized attribute(s) '${unknown.join(', ')}'`);
  return AgentUpdate.parse(body).agent;
}

export function agentRoutes(app: FastifyInstance, deps: AppDeps) {
  const downTime = deps.settings.agentDownTime;
  /** The agent, if the caller is an admin (get_agent); AgentNotFound otherwise. */
  const load = async (req: FastifyRequest, id: string): Promise<Agent> => {
    const agent =
      UUID.test(id) && isAdmin(req)
        ? await getAgent(deps.db, id, deps.clock.now(), downTime)
        : undefined;
    if (!agent) throw new ApiError('AgentNotFound', `Agent ${id} could not be found.`);
    return agent;
  };

  app.get('/v2.0/agents', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const { filter, alive, fields } = parseAgentQuery(req.query);
    if (!isAdmin(req)) return { agents: [] };
    const agents = await listAgents(deps.db, filter, deps.clock.now(), downTime);
    const shown = alive.length ? agents.filter((a) => alive.includes(a.alive)) : agents;
    return { agents: shown.map((a) => pick(a, fields)) };
  });

  app.get(
    '/v2.0/agents/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => {
      return { agent: pick(await load(req, req.params.id), values(req.query.fields)) };
    },
  );

  app.put('/v2.0/agents/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const before = await load(req, req.params.id);
    const changes = parseAgentUpdate(req.body);
    await updateAgent(deps.db, before.id, changes);
    const after = await load(req, before.id);
    if (after.admin_state_up !== before.admin_state_up) {
      deps.broker
        .cast(hostQueue(after.topic, after.host), 'resync', {
          reason: 'admin_state_changed',
          admin_state_up: after.admin_state_up,
        })
        .catch((e: Error) =>
          deps.log.warn({ err: e.message, agentId: after.id }, 'admin state hint not sent'),
        );
    }
    return { agent: after };
  });

  app.delete('/v2.0/agents/:id', async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const agent = await load(req, req.params.id);
    await deleteAgent(deps.db, agent.id);
    if (agent.binary === 'kumo-ovs-agent') await removeTunnelEndpoint(deps, agent.host);
    deps.log.info(
      { agentId: agent.id, host: agent.host, agentType: agent.agent_type },
      'agent deleted',
    );
    return reply.status(204).send();
  });
}
