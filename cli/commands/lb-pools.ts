/**
 * The LBaaS v1 pool and VIP commands, neutron CLI style (python3-neutronclient 8.1.0's
 * lb/pool.py, lb/vip.py and agentscheduler.py): lb-pool-create|list|show|update|delete|stats,
 * lb-vip-create|list|show|update|delete, lb-pool-list-on-agent and lb-agent-hosting-pool,
 * against kumo-api's /v2.0/lb/pools, /v2.0/lb/vips, /v2.0/agents/{id}/loadbalancer-pools
 * and /v2.0/lb/pools/{id}/loadbalancer-agent.
 *
 * Invariants: a pool no agent hosts (the API's `null`, as Neutron's) is an empty agent list;
 * the same option names and list columns as neutron (a column neutron lists but
 * Neutron's API never returns, the VIP's `algorithm`, is one neutron drops: so do we);
 * POOL and SUBNET accept a name; every value is checked before any request (lb-common).
 */
import type { Command } from 'commander';
import {
  LB_METHODS,
  LB_PROTOCOLS,
  LB_PROVIDER,
  MAX_CONNECTION_LIMIT,
  PERSISTENCE_TYPES,
  UNLIMITED_CONNECTIONS,
} from '../../contracts/lbaas.ts';
import type { CommandContext } from '../client.ts';
import {
  formatList,
  type OutputOptions,
  outputOptions,
  type Row,
  selectColumns,
} from '../format.ts';
import { AGENT_FIELDS, AGENT_FORMATTERS } from './agents.ts';
import {
  addFieldOptions,
  adminStateDown,
  boolean,
  enc,
  type FieldOption,
  intIn,
  ipAddress,
  type LbKind,
  MOVE_TO_POOL,
  one,
  oneLineText,
  parsePersistence,
  printCreated,
  printRow,
  registerDelete,
  registerList,
  registerShow,
  registerUpdate,
  resolveRef,
  rows,
} from './lb-common.ts';

export const POOL: LbKind = {
  singular: 'pool',
  plural: 'pools',
  path: '/v2.0/lb/pools',
  byName: true,
  fields: [
    'admin_state_up',
    'description',
    'health_monitors',
    'health_monitors_status',
    'id',
    'lb_method',
    'members',
    'name',
    'project_id',
    'protocol',
    'provider',
    'status',
    'status_description',
    'subnet_id',
    'tenant_id',
    'vip_id',
  ],
  listColumns: ['id', 'name', 'provider', 'lb_method', 'protocol', 'admin_state_up', 'status'],
  formatters: { provider: (v) => (typeof v === 'string' && v !== '' ? v : 'N/A') },
};

export const VIP: LbKind = {
  singular: 'vip',
  plural: 'vips',
  path: '/v2.0/lb/vips',
  byName: true,
  fields: [
    'address',
    'admin_state_up',
    'connection_limit',
    'description',
    'id',
    'name',
    'pool_id',
    'port_id',
    'project_id',
    'protocol',
    'protocol_port',
    'session_persistence',
    'status',
    'status_description',
    'subnet_id',
    'tenant_id',
  ],
  listColumns: ['id', 'name', 'address', 'protocol', 'admin_state_up', 'status'],
  formatters: {},
};

export const SUBNET: LbKind = {
  singular: 'subnet',
  plural: 'subnets',
  path: '/v2.0/subnets',
  byName: true,
  fields: [],
  listColumns: [],
  formatters: {},
};

const POOL_ON_AGENT_COLUMNS = ['id', 'name', 'lb_method', 'protocol', 'admin_state_up', 'status'];
const HOSTING_AGENT_COLUMNS = ['id', 'host', 'admin_state_up', 'alive'];

const name = (required = false): FieldOption => ({
  flags: '--name <name>',
  field: 'name',
  description: 'name',
  parse: oneLineText,
  required,
});
const description: FieldOption = {
  flags: '--description <description>',
  field: 'description',
  description: 'description',
  parse: oneLineText,
};
const lbMethod = (required = false): FieldOption => ({
  flags: '--lb-method <method>',
  field: 'lb_method',
  description: 'the algorithm that spreads load over the members',
  choices: LB_METHODS,
  required,
});
const protocol: FieldOption = {
  flags: '--protocol <protocol>',
  field: 'protocol',
  description: 'protocol for balancing',
  choices: LB_PROTOCOLS,
  required: true,
};
const adminStateUp: FieldOption = {
  flags: '--admin-state-up <bool>',
  field: 'admin_state_up',
  description: 'True or False',
  parse: boolean,
};
const connectionLimit: FieldOption = {
  flags: '--connection-limit <n>',
  field: 'connection_limit',
  description: 'maximum connections (-1: unlimited)',
  parse: intIn(UNLIMITED_CONNECTIONS, MAX_CONNECTION_LIMIT),
};
const persistence = (clearable: boolean): FieldOption => ({
  flags: '--session-persistence <spec>',
  field: 'session_persistence',
  description: `type=${PERSISTENCE_TYPES.join('|')}[,cookie_name=NAME]${clearable ? ' or action=clear' : ''}`,
  parse: (v) => parsePersistence(v, clearable),
});

const POOL_CREATE = [
  name(true),
  description,
  lbMethod(true),
  protocol,
  {
    flags: '--provider <provider>',
    field: 'provider',
    description: 'provider',
    choices: [LB_PROVIDER],
  },
];
const VIP_CREATE = [
  name(true),
  description,
  {
    flags: '--address <ip>',
    field: 'address',
    description: 'IP address of the VIP',
    parse: ipAddress,
  },
  connectionLimit,
  {
    flags: '--protocol-port <port>',
    field: 'protocol_port',
    description: 'TCP port the VIP listens on',
    parse: intIn(1, 65535),
    required: true,
  },
  protocol,
  persistence(false),
];

/** Options plus the required --subnet-id (a name or id) and --admin-state-down. */
function createCommand(program: Command, command: string, what: string) {
  const create = adminStateDown(program.command(command).description(`create a ${what}`));
  create.requiredOption('--subnet-id <subnet>', `subnet id or name of the ${what}`);
  return outputOptions(create);
}

function registerPoolCreate(program: Command, ctx: CommandContext): void {
  const create = createCommand(program, 'lb-pool-create', 'pool');
  const fieldsOf = addFieldOptions(create, POOL_CREATE);
  create.action(async (opts: Record<string, unknown> & OutputOptions) => {
    const client = ctx.client(create);
    const subnet = await resolveRef(client, SUBNET, String(opts.subnetId));
    const pool = {
      ...fieldsOf(opts),
      admin_state_up: opts.adminStateDown !== true,
      subnet_id: subnet,
    };
    printCreated(ctx, POOL, await client.post(POOL.path, { pool }), opts);
  });
}

function registerVipCreate(program: Command, ctx: CommandContext): void {
  const create = createCommand(program, 'lb-vip-create', 'VIP').argument(
    '<pool>',
    'pool id or name',
  );
  const fieldsOf = addFieldOptions(create, VIP_CREATE);
  create.action(async (poolRef: string, opts: Record<string, unknown> & OutputOptions) => {
    const client = ctx.client(create);
    const poolId = await resolveRef(client, POOL, poolRef);
    const subnet = await resolveRef(client, SUBNET, String(opts.subnetId));
    const vip = {
      ...fieldsOf(opts),
      pool_id: poolId,
      admin_state_up: opts.adminStateDown !== true,
      subnet_id: subnet,
    };
    printCreated(ctx, VIP, await client.post(VIP.path, { vip }), opts);
  });
}

function registerStats(program: Command, ctx: CommandContext): void {
  const stats = program
    .command('lb-pool-stats')
    .description("show a pool's traffic counters")
    .argument('<pool>', 'pool id or name');
  outputOptions(stats).action(async (ref: string, opts: OutputOptions) => {
    const client = ctx.client(stats);
    const id = await resolveRef(client, POOL, ref);
    const row = one(await client.get(`${POOL.path}/${enc(id)}/stats`), 'stats');
    const kind = { ...POOL, fields: Object.keys(row).sort() };
    printRow(ctx, kind, row, opts);
  });
}

function registerScheduler(program: Command, ctx: CommandContext): void {
  const onAgent = program
    .command('lb-pool-list-on-agent')
    .description('list the pools an LBaaS agent hosts')
    .argument('<agent>', 'LBaaS agent id');
  outputOptions(onAgent).action(async (agent: string, opts: OutputOptions) => {
    const columns = selectColumns(POOL.fields, opts.column, POOL_ON_AGENT_COLUMNS);
    const body = await ctx.client(onAgent).get(`/v2.0/agents/${enc(agent)}/loadbalancer-pools`);
    ctx.io.stdout.write(formatList(rows(body, 'pools'), columns, opts.format, POOL.formatters));
  });

  const hosting = program
    .command('lb-agent-hosting-pool')
    .description('show the LBaaS agent hosting a pool')
    .argument('<pool>', 'pool id or name');
  outputOptions(hosting).action(async (ref: string, opts: OutputOptions) => {
    const columns = selectColumns(AGENT_FIELDS, opts.column, HOSTING_AGENT_COLUMNS);
    const client = ctx.client(hosting);
    const id = await resolveRef(client, POOL, ref);
    // Neutron answers null for a pool no agent hosts and for no pool at all; an unknown id
    // is an error, as neutron's CLI finds the pool first.
    await client.get(`${POOL.path}/${enc(id)}?fields=id`);
    const body = await client.get(`${POOL.path}/${enc(id)}/loadbalancer-agent`);
    // A pool no agent hosts: Neutron answers `null`; we print an empty list.
    const agents: Row[] = body === null ? [] : [one(body, 'agent')];
    ctx.io.stdout.write(formatList(agents, columns, opts.format, AGENT_FORMATTERS));
  });
}

/** Adds the pool, VIP, stats and LBaaS agent-scheduler commands. */
export function registerPoolCommands(program: Command, ctx: CommandContext): void {
  registerPoolCreate(program, ctx);
  registerList(program, ctx, POOL, 'lb-pool-list');
  registerShow(program, ctx, POOL, 'lb-pool-show');
  registerUpdate(program, ctx, POOL, 'lb-pool-update', [
    name(),
    description,
    lbMethod(),
    adminStateUp,
  ]);
  registerDelete(program, ctx, POOL, 'lb-pool-delete');
  registerStats(program, ctx);
  registerVipCreate(program, ctx);
  registerList(program, ctx, VIP, 'lb-vip-list');
  registerShow(program, ctx, VIP, 'lb-vip-show');
  registerUpdate(program, ctx, VIP, 'lb-vip-update', [
    name(),
    description,
    connectionLimit,
    persistence(true),
    MOVE_TO_POOL,
    adminStateUp,
  ]);
  registerDelete(program, ctx, VIP, 'lb-vip-delete');
  registerScheduler(program, ctx);
}
