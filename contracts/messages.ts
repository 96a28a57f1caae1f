/**
 * The AMQP message contract: every message body is a JSON envelope
 * `{kumo: 1, method, args}` whose args are validated against the method's schema.
 *
 * Invariant: a consumer only ever sees messages that passed `parseMessage`; anything else
 * is dead-lettered with the validation reason, so one bad publisher cannot stop a queue.
 */
import { ReportStateArgs } from './agents.ts';
import { GetActiveNetworksArgs, GetNetworkInfoArgs } from './dhcp.ts';
import {
  ConsoleOutputArgs,
  GetHostInstancesArgs,
  GetInstanceArgs,
  UpdateInstanceArgs,
} from './instances.ts';
import {
  GetDevicesDetailsArgs,
  SecurityGroupInfoArgs,
  TunnelSyncArgs,
  UpdateDeviceListArgs,
} from './l2.ts';
import { GetActiveRoutersArgs, GetRouterInfoArgs, UpdateFloatingIpStatusesArgs } from './l3.ts';
import { GetActivePoolsArgs, GetPoolInfoArgs, UpdatePoolStatsArgs } from './lbaas.ts';
import { GetConfigDriveArgs, GetMetadataInstanceArgs } from './metadata.ts';
import {
  bool,
  type Infer,
  int,
  isPlainObject,
  obj,
  oneOf,
  optional,
  type Schema,
  ValidationError,
} from './schema.ts';
import { RESOURCE_KINDS, ReportStatusArgs, resourceId } from './status.ts';
import { GetHostVolumesArgs, GetSnapshotInfoArgs, GetVolumeInfoArgs } from './volume.ts';

/** Exchanges and well-known queues. */
export const EXCHANGE = 'kumo';
export const DEAD_LETTER_EXCHANGE = 'kumo.dead';
export const DEAD_LETTER_QUEUE = 'kumo.dead-letter';
/** The API's queues: state reports apart from everything else, so heartbeats are never starved. */
export const REPORTS_TOPIC = 'q-reports-plugin';
export const PLUGIN_TOPIC = 'q-plugin';

export const hostQueue = (topic: string, host: string) => `${topic}.${host}`;
export const fanoutExchange = (topic: string) => `${topic}_fanout`;

/** A change hint: the agent fetches the desired state itself. */
export const HintArgs = obj({
  resource: oneOf(RESOURCE_KINDS),
  id: resourceId(),
  revision: optional(int({ min: 0 })),
  deleted: optional(bool()),
});

/** Tells an agent to reconcile everything it hosts (revival, admin state change). */
export const ResyncArgs = obj({
  reason: oneOf(['revived', 'admin_state_changed', 'rescheduled', 'operator'] as const),
  admin_state_up: optional(bool()),
});

export const METHODS = {
  report_state: ReportStateArgs,
  hint: HintArgs,
  resync: ResyncArgs,
  get_devices_details: GetDevicesDetailsArgs,
  update_device_list: UpdateDeviceListArgs,
  tunnel_sync: TunnelSyncArgs,
  security_group_info: SecurityGroupInfoArgs,
  get_active_networks: GetActiveNetworksArgs,
  get_network_info: GetNetworkInfoArgs,
  get_active_routers: GetActiveRoutersArgs,
  get_router_info: GetRouterInfoArgs,
  update_floatingip_statuses: UpdateFloatingIpStatusesArgs,
  get_active_pools: GetActivePoolsArgs,
  get_pool_info: GetPoolInfoArgs,
  update_pool_stats: UpdatePoolStatsArgs,
  get_host_volumes: GetHostVolumesArgs,
  get_volume_info: GetVolumeInfoArgs,
  get_snapshot_info: GetSnapshotInfoArgs,
  get_instance: GetInstanceArgs,
  get_host_instances: GetHostInstancesArgs,
  update_instance: UpdateInstanceArgs,
  get_console_output: ConsoleOutputArgs,
  get_metadata_instance: GetMetadataInstanceArgs,
  get_config_drive: GetConfigDriveArgs,
  report_status: ReportStatusArgs,
} as const satisfies Record<string, Schema<unknown>>;

export type MethodName = keyof typeof METHODS;
export type ArgsOf<M extends MethodName> = Infer<(typeof METHODS)[M]>;
export type Message = { [M in MethodName]: { method: M; args: ArgsOf<M> } }[MethodName];

export function encodeMessage<M extends MethodName>(method: M, args: ArgsOf<M>): Buffer {
  return Buffer.from(JSON.stringify({ kumo: 1, method, args }));
}

const Envelope = obj({
  kumo: int({ min: 1, max: 1 }),
  method: oneOf(Object.keys(METHODS) as MethodName[]),
  args: { kind: 'any', parse: (v: unknown) => v } as Schema<unknown>,
});

/** Parses and validates a message body; throws ValidationError naming the bad field. */
export function parseMessage(body: Buffer): Message {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ValidationError('', 'message body is not valid JSON');
  }
  if (!isPlainObject(raw)) throw new ValidationError('', 'message body must be a JSON object');
  const env = Envelope.parse(raw);
  const args = METHODS[env.method].parse(env.args, 'args');
  return { method: env.method, args } as Message;
}

/** The body of an RPC reply. */
export type Reply<T> =
  | { ok: true; result: T }
  | { ok: false; error: { type: string; message: string } };
