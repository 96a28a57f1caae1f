/**
 * Neutron's DHCP agent-scheduler API: GET/POST /v2.0/agents/{id}/dhcp-networks,
 * DELETE /v2.0/agents/{id}/dhcp-networks/{network_id}, GET /v2.0/networks/{id}/dhcp-agents.
 *
 * Invariants: admin-only (a non-admin gets Neutron's 403 `rule:get_dhcp-networks is
 * disallowed by policy` before anything is looked up); a network is added only to an admin-up DHCP agent (409 otherwise)
 * and only once (409); adding or removing a binding makes the DHCP ports match and hints
 * the agents concerned, the one that lost the network included; POST answers 201 with the
 * JSON body `null` (the openstack client parses the body).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject, UUID } from '../../contracts/schema.ts';
import {
  addBinding,
  agentNetworksFilter,
  DHCP_AGENT_TYPE,
  dhcpAgentIdsOf,
  removeBinding,
  schedulerTransaction,
} from '../db/dhcp-bindings.ts';
import { getNetwork, listNetworks, networkNotFound } from '../db/networks.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents } from '../hints.ts';
import { pick, values } from '../query.ts';
import { syncDhcpPorts } from '../scheduler/dhcp.ts';
import { type ById, hostingAgentsBody, loadAgent, requireAdmin } from './agent-scheduler.ts';

async function loadNetwork(deps: AppDeps, id: string) {
  const network = UUID.test(id) ? await getNetwork(deps.db, id) : undefined;
  if (!network) throw networkNotFound(id);
  return network;
}

/** POST …/dhcp-networks: binds an admin-up DHCP agent to a network it does not host. */
async function addNetwork(deps: AppDeps, agentId: string, body: unknown) {
  if (!isPlainObject(body) || typeof body.network_id !== 'string')
    throw new ApiError(
      'BadRequest',
      "Invalid input: the body must be an object with a 'network_id' string.",
    );
  const agent = await loadAgent(deps, agentId);
  const network = await loadNetwork(deps, body.network_id);
  if (agent.agent_type !== DHCP_AGENT_TYPE || !agent.admin_state_up)
    throw new ApiError(
      'Conflict',
      `Agent ${agent.id} is not a valid DHCP Agent or has been disabled.`,
    );
  const added = await schedulerTransaction(deps.db, (tx) => addBinding(tx, network.id, agent.id));
  if (!added)
    throw new ApiError(
      'Conflict',
      `The network ${network.id} has been already hosted by the DHCP Agent ${agent.id}.`,
    );
  const ctx = { networkId: network.id, agentId: agent.id, host: agent.host };
  deps.log.info(ctx, 'network added to DHCP agent');
  await syncDhcpPorts(deps, network.id);
  await hintDhcpAgents(deps, network.id);
}

/** DELETE …/dhcp-networks/{network_id}: unbinds; the agent that lost it is hinted too. */
async function removeNetwork(deps: AppDeps, agentId: string, networkId: string) {
  const agent = await loadAgent(deps, agentId);
  const removed =
    UUID.test(networkId) &&
    (await schedulerTransaction(deps.db, (tx) => removeBinding(tx, networkId, agent.id)));
  if (!removed)
    throw new ApiError(
      'NotFound',
      `The network ${networkId} is not hosted by the DHCP agent ${agent.id}.`,
    );
  const ctx = { networkId, agentId: agent.id, host: agent.host };
  deps.log.info(ctx, 'network removed from DHCP agent');
  await syncDhcpPorts(deps, networkId);
  await hintDhcpAgents(deps, networkId, [agent.host]);
}

export function dhcpAgentRoutes(app: FastifyInstance, deps: AppDeps) {
  app.get('/v2.0/agents/:id/dhcp-networks', async (req: ById) => {
    requireAdmin(req, 'get_dhcp-networks');
    const agent = await loadAgent(deps, req.params.id);
    const networks = await listNetworks(deps.db, agentNetworksFilter(agent.id));
    return { networks: networks.map((n) => pick(n, values(req.query.fields))) };
  });
  app.post('/v2.0/agents/:id/dhcp-networks', async (req: ById, reply) => {
    requireAdmin(req, 'create_dhcp-network');
    await addNetwork(deps, req.params.id, req.body);
    return reply.status(201).type('application/json').send('null');
  });
  app.delete(
    '/v2.0/agents/:id/dhcp-networks/:network_id',
    async (req: FastifyRequest<{ Params: { id: string; network_id: string } }>, reply) => {
      requireAdmin(req, 'delete_dhcp-network');
      await removeNetwork(deps, req.params.id, req.params.network_id);
      return reply.status(204).send();
    },
  );
  app.get('/v2.0/networks/:id/dhcp-agents', async (req: ById) => {
    requireAdmin(req, 'get_dhcp-agents');
    const network = await loadNetwork(deps, req.params.id);
    return hostingAgentsBody(deps, await dhcpAgentIdsOf(deps.db, network.id), req.query);
  });
}
