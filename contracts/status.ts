/**
 * Resource kinds and resource status reports: the vocabulary of hints (API → agent) and
 * of `report_status` (agent → API).
 *
 * Invariants: a hint names one of RESOURCE_KINDS, never free text, so an agent can refuse
 * a kind it does not manage by type; a status report carries only changes (the agent's
 * status reporter remembers what it sent and forgets on resync, when it sends everything
 * again), so the API keeps the last status per (agent, resource, id) until the agent
 * reports another, the agent is deleted or the resource is.
 */
import { AGENT_TYPE_NAMES } from './agents.ts';
import { arr, hostname, type Infer, obj, oneOf, optional, str } from './schema.ts';

export const RESOURCE_KINDS = [
  'network',
  'port',
  'tunnels',
  'instance',
  'router',
  'pool',
  'volume',
  'snapshot',
] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export const RESOURCE_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const resourceId = () => str({ pattern: RESOURCE_ID, patternName: 'a resource id' });

/** ACTIVE: served as asked (or torn down as asked); ERROR: not served, `reason` says why. */
export const RESOURCE_STATUSES = ['ACTIVE', 'ERROR'] as const;
export type ResourceStatusValue = (typeof RESOURCE_STATUSES)[number];

export const ResourceStatus = obj({
  resource: oneOf(RESOURCE_KINDS),
  id: resourceId(),
  status: oneOf(RESOURCE_STATUSES),
  reason: optional(str({ max: 1024 })),
});
export type ResourceStatus = Infer<typeof ResourceStatus>;

export const ReportStatusArgs = obj({
  host: hostname(),
  agent_type: oneOf(AGENT_TYPE_NAMES),
  statuses: arr(ResourceStatus, { max: 1000 }),
});
export type ReportStatusArgs = Infer<typeof ReportStatusArgs>;
