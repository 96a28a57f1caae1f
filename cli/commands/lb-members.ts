/**
 * The LBaaS v1 member and health monitor commands, neutron CLI style (python3-neutronclient
 * 8.1.0's lb/member.py and lb/healthmonitor.py): lb-member-create|list|show|update|delete,
 * lb-healthmonitor-create|list|show|update|delete|associate|disassociate, against kumo-api's
 * /v2.0/lb/members, /v2.0/lb/health_monitors and /v2.0/lb/pools/{id}/health_monitors.
 *
 * Invariant: members and health monitors are named by id only (neutron's allow_names =
 * False; they have no name), a POOL by id or name; `--url-path` and `--expected-codes` are
 * held to the patterns contracts/lbaas.ts sets for what reaches haproxy.cfg.
 */
import { type Command, InvalidArgumentError } from 'commander';
import {
  expectedCodeList,
  HTTP_METHODS,
  MAX_MEMBER_WEIGHT,
  MAX_MONITOR_RETRIES,
  MAX_MONITOR_SECONDS,
  MONITOR_TYPES,
  URL_PATH,
} from '../../contracts/lbaas.ts';
import type { CommandContext } from '../client.ts';
import type { OutputOptions } from '../format.ts';
import { outputOptions } from '../format.ts';
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
  pattern,
  printCreated,
  registerDelete,
  registerList,
  registerShow,
  registerUpdate,
  resolveRef,
} from './lb-common.ts';
import { POOL } from './lb-pools.ts';

export const MEMBER: LbKind = {
  singular: 'member',
  plural: 'members',
  path: '/v2.0/lb/members',
  byName: false,
  fields: [
    'address',
    'admin_state_up',
    'id',
    'pool_id',
    'project_id',
    'protocol_port',
    'status',
    'status_description',
    'tenant_id',
    'weight',
  ],
  listColumns: ['id', 'address', 'protocol_port', 'weight', 'admin_state_up', 'status'],
  formatters: {},
};

export const HEALTH_MONITOR: LbKind = {
  singular: 'health_monitor',
  plural: 'health_monitors',
  path: '/v2.0/lb/health_monitors',
  byName: false,
  fields: [
    'admin_state_up',
    'delay',
    'expected_codes',
    'http_method',
    'id',
    'max_retries',
    'pools',
    'project_id',
    'status',
    'status_description',
    'tenant_id',
    'timeout',
    'type',
    'url_path',
  ],
  listColumns: ['id', 'type', 'admin_state_up'],
  formatters: {},
};

const adminStateUp: FieldOption = {
  flags: '--admin-state-up <bool>',
  field: 'admin_state_up',
  description: 'True or False',
  parse: boolean,
};
const weight: FieldOption = {
  flags: '--weight <weight>',
  field: 'weight',
  description: `weight in the pool (default 1, 0..${MAX_MEMBER_WEIGHT})`,
  parse: intIn(0, MAX_MEMBER_WEIGHT),
};
const seconds = (flags: string, field: string, description: string, required: boolean) => ({
  flags,
  field,
  description,
  parse: intIn(1, MAX_MONITOR_SECONDS),
  required,
});
/** The monitor's settings; required ones are so on create only. */
const monitorOptions = (create: boolean): FieldOption[] => [
  seconds('--delay <seconds>', 'delay', 'seconds between probes', create),
  seconds('--timeout <seconds>', 'timeout', 'seconds a probe may take', create),
  {
    flags: '--max-retries <n>',
    field: 'max_retries',
    description: `failed probes before a member is INACTIVE (1..${MAX_MONITOR_RETRIES})`,
    parse: intIn(1, MAX_MONITOR_RETRIES),
    required: create,
  },
  {
    flags: '--http-method <method>',
    field: 'http_method',
    description: 'the method of an HTTP(S) probe',
    choices: HTTP_METHODS,
  },
  {
    flags: '--url-path <path>',
    field: 'url_path',
    description: 'the path of an HTTP(S) probe, starting with /',
    parse: pattern(URL_PATH, 'an absolute path without spaces, quotes or controls'),
  },
  {
    flags: '--expected-codes <codes>',
    field: 'expected_codes',
    description: 'healthy answers: 200, 200,202 or 200-204',
    parse: expectedCodes,
  },
];

/** `200`, `200,202` or `200-204` with a low-to-high range (expectedCodeList's forms). */
function expectedCodes(value: string): string {
  if (expectedCodeList(value) === undefined)
    throw new InvalidArgumentError('must be like 200, 200,202 or 200-204 (codes 100-599).');
  return value;
}

function registerMemberCreate(program: Command, ctx: CommandContext): void {
  const create = adminStateDown(program.command('lb-member-create').description('create a member'));
  create.argument('<pool>', 'pool id or name');
  const fieldsOf = addFieldOptions(outputOptions(create), [
    weight,
    {
      flags: '--address <ip>',
      field: 'address',
      description: 'IP address of the member',
      parse: ipAddress,
      required: true,
    },
    {
      flags: '--protocol-port <port>',
      field: 'protocol_port',
      description: 'port the member listens on',
      parse: intIn(1, 65535),
      required: true,
    },
  ]);
  create.action(async (poolRef: string, opts: Record<string, unknown> & OutputOptions) => {
    const client = ctx.client(create);
    const poolId = await resolveRef(client, POOL, poolRef);
    const member = {
      ...fieldsOf(opts),
      pool_id: poolId,
      admin_state_up: opts.adminStateDown !== true,
    };
    printCreated(ctx, MEMBER, await client.post(MEMBER.path, { member }), opts);
  });
}

function registerMonitorCreate(program: Command, ctx: CommandContext): void {
  const create = adminStateDown(
    program.command('lb-healthmonitor-create').description('create a health monitor'),
  );
  const fieldsOf = addFieldOptions(outputOptions(create), [
    ...monitorOptions(true),
    {
      flags: '--type <type>',
      field: 'type',
      description: 'how members are probed',
      choices: MONITOR_TYPES,
      required: true,
    },
  ]);
  create.action(async (opts: Record<string, unknown> & OutputOptions) => {
    const client = ctx.client(create);
    const monitor = { ...fieldsOf(opts), admin_state_up: opts.adminStateDown !== true };
    const body = await client.post(HEALTH_MONITOR.path, { health_monitor: monitor });
    printCreated(ctx, HEALTH_MONITOR, body, opts);
  });
}

function registerAssociation(program: Command, ctx: CommandContext): void {
  const associate = program
    .command('lb-healthmonitor-associate')
    .description('associate a health monitor with a pool')
    .argument('<health_monitor>', 'health monitor id')
    .argument('<pool>', 'pool id or name');
  associate.action(async (monitor: string, poolRef: string) => {
    const client = ctx.client(associate);
    const poolId = await resolveRef(client, POOL, poolRef);
    await client.post(`${POOL.path}/${enc(poolId)}/health_monitors`, {
      health_monitor: { id: monitor },
    });
    ctx.io.stdout.write(`Associated health monitor ${monitor}\n`);
  });

  const disassociate = program
    .command('lb-healthmonitor-disassociate')
    .description('remove a health monitor from a pool')
    .argument('<health_monitor>', 'health monitor id')
    .argument('<pool>', 'pool id or name');
  disassociate.action(async (monitor: string, poolRef: string) => {
    const client = ctx.client(disassociate);
    const poolId = await resolveRef(client, POOL, poolRef);
    await client.delete(`${POOL.path}/${enc(poolId)}/health_monitors/${enc(monitor)}`);
    ctx.io.stdout.write(`Disassociated health monitor ${monitor}\n`);
  });
}

/** Adds the member and health monitor commands. */
export function registerMemberCommands(program: Command, ctx: CommandContext): void {
  registerMemberCreate(program, ctx);
  registerList(program, ctx, MEMBER, 'lb-member-list');
  registerShow(program, ctx, MEMBER, 'lb-member-show');
  registerUpdate(program, ctx, MEMBER, 'lb-member-update', [weight, MOVE_TO_POOL, adminStateUp]);
  registerDelete(program, ctx, MEMBER, 'lb-member-delete');
  registerMonitorCreate(program, ctx);
  registerList(program, ctx, HEALTH_MONITOR, 'lb-healthmonitor-list');
  registerShow(program, ctx, HEALTH_MONITOR, 'lb-healthmonitor-show');
  registerUpdate(program, ctx, HEALTH_MONITOR, 'lb-healthmonitor-update', [
    ...monitorOptions(false),
    adminStateUp,
  ]);
  registerDelete(program, ctx, HEALTH_MONITOR, 'lb-healthmonitor-delete');
  registerAssociation(program, ctx);
}
