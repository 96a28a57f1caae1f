/**
 * The agent command group, Neutron CLI style: agent-list, agent-show, agent-update and
 * agent-delete against kumo-api's /v2.0/agents.
 *
 * Invariant: a command either prints its result to stdout and resolves, or throws — a
 * UsageError before any request is sent, an Error after — and never exits the process or
 * writes to stderr itself; main() turns what it throws into one stderr line and an exit code.
 */
import { type Command, Option } from 'commander';
import { AGENT_TYPE_NAMES, type Agent } from '../../contracts/agents.ts';
import type { CommandContext } from '../client.ts';
import {
  type DisplayFormatters,
  formatList,
  formatShow,
  type OutputOptions,
  outputOptions,
  type Row,
  selectColumns,
  UsageError,
} from '../format.ts';

/** Every field of the API's agent JSON, sorted; `-c` picks among these. */
export const AGENT_FIELDS = (
  [
    'admin_state_up',
    'agent_type',
    'alive',
    'availability_zone',
    'binary',
    'configurations',
    'created_at',
    'description',
    'heartbeat_timestamp',
    'host',
    'id',
    'resource_versions',
    'resources_synced',
    'started_at',
    'topic',
  ] as const satisfies readonly (keyof Agent)[]
).slice() as string[];

export const AGENT_LIST_COLUMNS = ['id', 'agent_type', 'host', 'alive', 'admin_state_up', 'binary'];

export const AGENT_FORMATTERS: DisplayFormatters = {
  alive: (v) => (v === true ? ':-)' : 'xxx'),
};

function agentPath(id: string): string {
  return `/v2.0/agents/${encodeURIComponent(id)}`;
}

function member(body: unknown, key: string): unknown {
  if (typeof body === 'object' && body !== null && key in body) {
    return (body as Record<string, unknown>)[key];
  }
  throw new Error(`unexpected answer from kumo-api: no "${key}" in the body`);
}

function isRow(value: unknown): value is Row {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function agentListPath(filters: { agentType?: string; host?: string }): string {
  const query = [
    ['agent_type', filters.agentType],
    ['host', filters.host],
  ]
    .filter((kv): kv is [string, string] => kv[1] !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
  return query ? `/v2.0/agents?${query}` : '/v2.0/agents';
}

function registerList(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('agent-list')
    .description('list agents')
    .addOption(
      new Option('--agent-type <type>', 'only agents of this type').choices(AGENT_TYPE_NAMES),
    )
    .option('--host <host>', 'only agents on this host');
  outputOptions(cmd).action(async (opts: OutputOptions & { agentType?: string; host?: string }) => {
    const columns = selectColumns(AGENT_FIELDS, opts.column, AGENT_LIST_COLUMNS);
    const agents = member(await ctx.client(cmd).get(agentListPath(opts)), 'agents');
    if (!Array.isArray(agents) || !agents.every(isRow)) {
      throw new Error('unexpected answer from kumo-api: "agents" is not a list of objects');
    }
    ctx.io.stdout.write(formatList(agents, columns, opts.format, AGENT_FORMATTERS));
  });
}

function registerShow(program: Command, ctx: CommandContext): void {
  const cmd = program.command('agent-show').description('show one agent').argument('<id>');
  outputOptions(cmd).action(async (id: string, opts: OutputOptions) => {
    const columns = selectColumns(AGENT_FIELDS, opts.column, []);
    const agent = member(await ctx.client(cmd).get(agentPath(id)), 'agent');
    if (!isRow(agent)) throw new Error('unexpected answer from kumo-api: "agent" is not an object');
    const shown = columns.length > 0 ? columns : Object.keys(agent).sort();
    ctx.io.stdout.write(formatShow(agent, shown, opts.format, AGENT_FORMATTERS));
  });
}

interface UpdateOptions {
  adminStateUp?: boolean;
  adminStateDown?: boolean;
  description?: string;
}

/** The PUT body for agent-update; a UsageError when the flags ask for no change. */
export function agentUpdateBody(opts: UpdateOptions): { agent: Record<string, unknown> } {
  if (opts.adminStateUp && opts.adminStateDown) {
    throw new UsageError('--admin-state-up and --admin-state-down are mutually exclusive');
  }
  const agent: Record<string, unknown> = {};
  if (opts.adminStateUp) agent.admin_state_up = true;
  if (opts.adminStateDown) agent.admin_state_up = false;
  if (opts.description !== undefined) agent.description = opts.description;
  if (Object.keys(agent).length === 0) {
    throw new UsageError(
      'nothing to update: give --admin-state-up, --admin-state-down or --description',
    );
  }
  return { agent };
}

function registerUpdate(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('agent-update')
    .description("change an agent's admin state or description")
    .argument('<id>')
    .addOption(new Option('--admin-state-up', 'let the agent be scheduled to'))
    .addOption(
      new Option('--admin-state-down', 'stop scheduling to the agent').conflicts('adminStateUp'),
    )
    .option('--description <text>', 'free-form description');
  cmd.action(async (id: string, opts: UpdateOptions) => {
    const body = agentUpdateBody(opts);
    await ctx.client(cmd).put(agentPath(id), body);
    ctx.io.stdout.write(`Updated agent: ${id}\n`);
  });
}

function registerDelete(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('agent-delete')
    .description('delete agents (each is tried; any failure exits 1)')
    .argument('<id...>');
  cmd.action(async (ids: string[]) => {
    const client = ctx.client(cmd);
    const deleted: string[] = [];
    const failed: string[] = [];
    for (const id of ids) {
      try {
        await client.delete(agentPath(id));
        deleted.push(id);
      } catch (e) {
        failed.push(`${id} (${(e as Error).message})`);
      }
    }
    if (deleted.length > 0) ctx.io.stdout.write(`Deleted agent(s): ${deleted.join(', ')}\n`);
    if (failed.length > 0) throw new Error(`failed to delete agent(s): ${failed.join('; ')}`);
  });
}

/** Adds the agent-* commands to the root program. */
export function registerAgentCommands(program: Command, ctx: CommandContext): void {
  registerList(program, ctx);
  registerShow(program, ctx);
  registerUpdate(program, ctx);
  registerDelete(program, ctx);
}
