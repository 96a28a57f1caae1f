/**
 * The DHCP agent-scheduler commands, Neutron CLI style: dhcp-agent-network-add,
 * dhcp-agent-network-remove, net-list-on-dhcp-agent and dhcp-agent-list-hosting-net,
 * against kumo-api's /v2.0/agents/{id}/dhcp-networks and /v2.0/networks/{id}/dhcp-agents.
 *
 * Invariant: NET is resolved as the openstack client does — by id, then (on 404) by exact
 * name, refusing a name that matches no network or several; a command either prints and
 * resolves or throws one-line errors for main() to report.
 */
import type { Command } from 'commander';
import { ApiCallError, type CommandContext, type KumoClient } from '../client.ts';
import {
  formatList,
  type OutputOptions,
  outputOptions,
  type Row,
  selectColumns,
} from '../format.ts';
import { AGENT_FIELDS, AGENT_FORMATTERS, AGENT_LIST_COLUMNS } from './agents.ts';

export const NETWORK_LIST_COLUMNS = ['id', 'name', 'subnets'];
const NETWORK_FIELDS = [
  'admin_state_up',
  'availability_zones',
  'created_at',
  'description',
  'id',
  'mtu',
  'name',
  'project_id',
  'provider:network_type',
  'provider:physical_network',
  'provider:segmentation_id',
  'revision_number',
  'router:external',
  'shared',
  'status',
  'subnets',
  'updated_at',
];
const NETWORK_FORMATTERS = {
  subnets: (v: unknown) => (Array.isArray(v) ? v.join('\n') : ''),
};

function rows(body: unknown, key: string): Row[] {
  const list =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
  if (
    !Array.isArray(list) ||
    !list.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))
  )
    throw new Error(`unexpected answer from kumo-api: "${key}" is not a list of objects`);
  return list as Row[];
}

const enc = encodeURIComponent;

/** A network id from an id or a name: GET by id, then ?name= on 404. */
export async function resolveNetwork(client: KumoClient, ref: string): Promise<string> {
  try {
    const body = (await client.get(`/v2.0/networks/${enc(ref)}`)) as {
      network?: { id?: unknown };
    };
    if (typeof body?.network?.id === 'string') return body.network.id;
  } catch (e) {
    if (!(e instanceof ApiCallError) || e.status !== 404) throw e;
  }
  const found = rows(await client.get(`/v2.0/networks?name=${enc(ref)}&fields=id`), 'networks');
  if (found.length === 0) throw new Error(`no network with a name or id of '${ref}'`);
  if (found.length > 1)
    throw new Error(`more than one network is named '${ref}'; use the network id`);
  return String(found[0]?.id);
}

export function registerDhcpCommands(program: Command, ctx: CommandContext): void {
  const add = program
    .command('dhcp-agent-network-add')
    .description('add a network to a DHCP agent')
    .argument('<agent>', 'DHCP agent id')
    .argument('<network>', 'network id or name');
  add.action(async (agent: string, network: string) => {
    const client = ctx.client(add);
    const networkId = await resolveNetwork(client, network);
    await client.post(`/v2.0/agents/${enc(agent)}/dhcp-networks`, { network_id: networkId });
    ctx.io.stdout.write(`Added network ${network} to DHCP agent\n`);
  });

  const remove = program
    .command('dhcp-agent-network-remove')
    .description('remove a network from a DHCP agent')
    .argument('<agent>', 'DHCP agent id')
    .argument('<network>', 'network id or name');
  remove.action(async (agent: string, network: string) => {
    const client = ctx.client(remove);
    const networkId = await resolveNetwork(client, network);
    await client.delete(`/v2.0/agents/${enc(agent)}/dhcp-networks/${enc(networkId)}`);
    ctx.io.stdout.write(`Removed network ${network} from DHCP agent\n`);
  });

  const nets = program
    .command('net-list-on-dhcp-agent')
    .description('list the networks a DHCP agent serves')
    .argument('<agent>', 'DHCP agent id');
  outputOptions(nets).action(async (agent: string, opts: OutputOptions) => {
    const columns = selectColumns(NETWORK_FIELDS, opts.column, NETWORK_LIST_COLUMNS);
    const body = await ctx.client(nets).get(`/v2.0/agents/${enc(agent)}/dhcp-networks`);
    ctx.io.stdout.write(
      formatList(rows(body, 'networks'), columns, opts.format, NETWORK_FORMATTERS),
    );
  });

  const hosting = program
    .command('dhcp-agent-list-hosting-net')
    .description('list the DHCP agents serving a network')
    .argument('<network>', 'network id or name');
  outputOptions(hosting).action(async (network: string, opts: OutputOptions) => {
    const columns = selectColumns(AGENT_FIELDS, opts.column, AGENT_LIST_COLUMNS);
    const client = ctx.client(hosting);
    const networkId = await resolveNetwork(client, network);
    const body = await client.get(`/v2.0/networks/${enc(networkId)}/dhcp-agents`);
    ctx.io.stdout.write(formatList(rows(body, 'agents'), columns, opts.format, AGENT_FORMATTERS));
  });
}
