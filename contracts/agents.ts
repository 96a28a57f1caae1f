/**
 * The agent vocabulary shared by kumo-api, the CLI and every agent daemon.
 *
 * Invariant: an agent is identified by (agent_type, host); its binary and topic follow
 * from its type through AGENT_TYPES, so a report whose binary or topic disagrees with its
 * type is refused at the edge rather than stored.
 */
import { bool, hostname, type Infer, json, nullable, obj, oneOf, optional, str } from './schema.ts';

export const AGENT_KINDS = ['ovs', 'dhcp', 'l3', 'lbaas', 'volume', 'compute'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

export interface AgentTypeInfo {
  kind: AgentKind;
  agentType: string;
  binary: string;
  /** AMQP topic; the agent's own queue is `<topic>.<host>`. */
  topic: string;
  /** Whether it reports an availability zone (`[agent] availability_zone`), as Neutron's
   * DHCP and L3 agents, Cinder's volume service and Nova's compute do; the others show null. */
  zoned: boolean;
}

export const AGENT_TYPES: readonly AgentTypeInfo[] = [
  {
    kind: 'ovs',
    agentType: 'Open vSwitch agent',
    binary: 'kumo-ovs-agent',
    topic: 'ovs_agent',
    zoned: false,
  },
  {
    kind: 'dhcp',
    agentType: 'DHCP agent',
    binary: 'kumo-dhcp-agent',
    topic: 'dhcp_agent',
    zoned: true,
  },
  { kind: 'l3', agentType: 'L3 agent', binary: 'kumo-l3-agent', topic: 'l3_agent', zoned: true },
  {
    kind: 'lbaas',
    agentType: 'Loadbalancer agent',
    binary: 'kumo-lbaas-agent',
    topic: 'lbaas_agent',
    zoned: false,
  },
  {
    kind: 'volume',
    agentType: 'Volume agent',
    binary: 'kumo-volume-agent',
    topic: 'volume_agent',
    zoned: true,
  },
  {
    kind: 'compute',
    agentType: 'Compute agent',
    binary: 'kumo-compute-agent',
    topic: 'compute_agent',
    zoned: true,
  },
];

export function agentTypeByKind(kind: AgentKind): AgentTypeInfo {
  const info = AGENT_TYPES.find((t) => t.kind === kind);
  if (!info) throw new Error(`unknown agent kind ${kind}`);
  return info;
}

export const AGENT_TYPE_NAMES = AGENT_TYPES.map((t) => t.agentType);

/** The state an agent reports in `report_state` (Neutron's agent_state dict). */
export const AgentState = obj({
  agent_type: oneOf(AGENT_TYPE_NAMES),
  binary: str({ min: 1, max: 64 }),
  topic: str({ min: 1, max: 64 }),
  host: hostname(),
  availability_zone: optional(str({ max: 64 })),
  start_flag: optional(bool()),
  configurations: json(),
  resource_versions: optional(json({ maxBytes: 4096 })),
});
export type AgentState = Infer<typeof AgentState>;

/** report_state args: the state plus the agent's own clock, for skew diagnostics. */
export const ReportStateArgs = obj({
  agent_state: AgentState,
  time: str({ max: 40 }),
});
export type ReportStateArgs = Infer<typeof ReportStateArgs>;

/** An agent as the API returns it (Neutron v2.0 field for field). */
export interface Agent {
  id: string;
  agent_type: string;
  binary: string;
  topic: string;
  host: string;
  admin_state_up: boolean;
  alive: boolean;
  availability_zone: string | null;
  description: string | null;
  configurations: Record<string, unknown>;
  resource_versions: Record<string, unknown>;
  resources_synced: boolean | null;
  created_at: string;
  started_at: string;
  heartbeat_timestamp: string;
}

/** PUT /v2.0/agents/{id}: only these two attributes may change. */
export const AgentUpdate = obj({
  agent: obj({
    admin_state_up: optional(bool()),
    description: optional(nullable(str({ max: 255 }))),
  }),
});
export type AgentUpdate = Infer<typeof AgentUpdate>;

export const AGENT_READ_ONLY = [
  'id',
  'agent_type',
  'binary',
  'topic',
  'host',
  'alive',
  'availability_zone',
  'configurations',
  'resource_versions',
  'resources_synced',
  'created_at',
  'started_at',
  'heartbeat_timestamp',
] as const;
