/**
 * The L3 commands, Neutron CLI style: l3-agent-router-add, l3-agent-router-remove,
 * router-list-on-l3-agent and l3-agent-list-hosting-router against kumo-api's
 * /v2.0/agents/{id}/l3-routers and /v2.0/routers/{id}/l3-agents; plus router-list,
 * router-show and floatingip-list.
 *
 * Invariant: ROUTER is a router id (a UUID, used as given) or an exact name, resolved
 * through ?name= and refused when it matches no router or several; a command either
 * prints and resolves or throws one-line errors for main() to report.
 */
import type { Command } from 'commander';
import { UUID } from '../../contracts/schema.ts';
import type { CommandContext, KumoClient } from '../client.ts';
import {
  compact,
  type DisplayFormatters,
  formatList,
  formatShow,
  lines,
  type OutputOptions,
  outputOptions,
  type Row,
  selectColumns,
} from '../format.ts';
import { AGENT_FIELDS, AGENT_FORMATTERS, AGENT_LIST_COLUMNS } from './agents.ts';

const ROUTER_FIELDS = [
  'admin_state_up',
  'created_at',
  'description',
  'external_gateway_info',
  'id',
  'name',
  'project_id',
  'revision_number',
  'routes',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
];
const ROUTER_LIST_COLUMNS = ['id', 'name', 'status', 'admin_state_up', 'external_gateway_info'];
const FLOATINGIP_FIELDS = [
  'created_at',
  'description',
  'fixed_ip_address',
  'floating_ip_address',
  'floating_network_id',
  'id',
  'port_id',
  'project_id',
  'revision_number',
  'router_id',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
];
const FLOATINGIP_LIST_COLUMNS = ['id', 'fixed_ip_address', 'floating_ip_address', 'port_id'];

const ROUTER_FORMATTERS: DisplayFormatters = {
  external_gateway_info: compact,
  routes: lines,
  tags: lines,
};

const enc = encodeURIComponent;

function member(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null
    ? (body as Record<string, unknown>)[key]
    : undefined;
}

function rows(body: unknown, key: string): Row[] {
  const list = member(body, key);
  if (
    !Array.isArray(list) ||
    !list.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))
  )
    throw new Error(`unexpected answer from kumo-api: "${key}" is not a list of objects`);
  return list as Row[];
}

/** A router id from an id or a name (see the module invariant). */
export async function resolveRouter(client: KumoClient, ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const found = rows(await client.get(`/v2.0/routers?name=${enc(ref)}&fields=id`), 'routers');
  if (found.length === 0) throw new Error(`no router with a name or id of '${ref}'`);
  if (found.length > 1)
    throw new Error(`more than one router is named '${ref}'; use the router id`);
  return String(found[0]?.id);
}

function registerRehosting(program: Command, ctx: CommandContext): void {
  const add = program
    .command('l3-agent-router-add')
    .description('add a router to an L3 agent')
    .argument('<agent>', 'L3 agent id')
    .argument('<router>', 'router id or name');
  add.action(async (agent: string, router: string) => {
    const client = ctx.client(add);
    const routerId = await resolveRouter(client, router);
    await client.post(`/v2.0/agents/${enc(agent)}/l3-routers`, { router_id: routerId });
    ctx.io.stdout.write(`Added router ${router} to L3 agent\n`);
  });

  const remove = program
    .command('l3-agent-router-remove')
    .description('remove a router from an L3 agent')
    .argument('<agent>', 'L3 agent id')
    .argument('<router>', 'router id or name');
  remove.action(async (agent: string, router: string) => {
    const client = ctx.client(remove);
    const routerId = await resolveRouter(client, router);
    await client.delete(`/v2.0/agents/${enc(agent)}/l3-routers/${enc(routerId)}`);
    ctx.io.stdout.write(`Removed router ${router} from L3 agent\n`);
  });
}

function registerSchedulerLists(program: Command, ctx: CommandContext): void {
  const onAgent = program
    .command('router-list-on-l3-agent')
    .description('list the routers an L3 agent hosts')
    .argument('<agent>', 'L3 agent id');
  outputOptions(onAgent).action(async (agent: string, opts: OutputOptions) => {
    const columns = selectColumns(ROUTER_FIELDS, opts.column, ROUTER_LIST_COLUMNS);
    const body = await ctx.client(onAgent).get(`/v2.0/agents/${enc(agent)}/l3-routers`);
    ctx.io.stdout.write(formatList(rows(body, 'routers'), columns, opts.format, ROUTER_FORMATTERS));
  });

  const hosting = program
    .command('l3-agent-list-hosting-router')
    .description('list the L3 agents hosting a router')
    .argument('<router>', 'router id or name');
  outputOptions(hosting).action(async (router: string, opts: OutputOptions) => {
    const columns = selectColumns(AGENT_FIELDS, opts.column, AGENT_LIST_COLUMNS);
    const client = ctx.client(hosting);
    const routerId = await resolveRouter(client, router);
    const body = await client.get(`/v2.0/routers/${enc(routerId)}/l3-agents`);
    ctx.io.stdout.write(formatList(rows(body, 'agents'), columns, opts.format, AGENT_FORMATTERS));
  });
}

function registerResources(program: Command, ctx: CommandContext): void {
  const list = program.command('router-list').description('list routers');
  outputOptions(list).action(async (opts: OutputOptions) => {
    const columns = selectColumns(ROUTER_FIELDS, opts.column, ROUTER_LIST_COLUMNS);
    const body = await ctx.client(list).get('/v2.0/routers');
    ctx.io.stdout.write(formatList(rows(body, 'routers'), columns, opts.format, ROUTER_FORMATTERS));
  });

  const show = program
    .command('router-show')
    .description('show one router')
    .argument('<router>', 'router id or name');
  outputOptions(show).action(async (router: string, opts: OutputOptions) => {
    const client = ctx.client(show);
    const routerId = await resolveRouter(client, router);
    const found = member(await client.get(`/v2.0/routers/${enc(routerId)}`), 'router');
    if (typeof found !== 'object' || found === null || Array.isArray(found))
      throw new Error('unexpected answer from kumo-api: "router" is not an object');
    const row = found as Row;
    const columns = selectColumns(ROUTER_FIELDS, opts.column, Object.keys(row).sort());
    ctx.io.stdout.write(formatShow(row, columns, opts.format, ROUTER_FORMATTERS));
  });

  const fips = program.command('floatingip-list').description('list floating IPs');
  outputOptions(fips).action(async (opts: OutputOptions) => {
    const columns = selectColumns(FLOATINGIP_FIELDS, opts.column, FLOATINGIP_LIST_COLUMNS);
    const body = await ctx.client(fips).get('/v2.0/floatingips');
    ctx.io.stdout.write(formatList(rows(body, 'floatingips'), columns, opts.format));
  });
}

/** Adds the L3 commands to the root program. */
export function registerL3Commands(program: Command, ctx: CommandContext): void {
  registerRehosting(program, ctx);
  registerSchedulerLists(program, ctx);
  registerResources(program, ctx);
}
