/**
 * Resource kinds and resource status reports: the vocabulary of hints (API → agent) and
 * of `report_status` (agent → API).
 *
 * Invariants: a hint names one of RESOURCE_KINDS, never free text, so an agent can refuse
 * a kind it does not manage by type; a status report carries only changes (the agent's
 * status reporter remembers what it sent and forgets on resync, when it sends everything
 * again), so the API keeps the last status per (agent, resource, id) until the agent
 * reports another, the agent is deleted or the resource is. A resource served without
 * some of its parts (one bad port of a network) is ACTIVE and lists those parts in
 * `rejected`, complete each time, so a part served again needs no report of its own.
 */
import { AGENT_TYPE_NAMES } from './agents.ts';
import { arr, hostname, type Infer, int, obj, oneOf, optional, str } from './schema.ts';

export const RESOURCE_KINDS = [
  'network',
  'subnet',
  'port',
  'tunnels',
  'instance',
  'router',
  'floatingip',
  'route',
  'security_group',
  'pool',
  'member',
  'vip',
  'health_monitor',
  'volume',
  'snapshot',
  'attachment',
] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export const RESOURCE_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const resourceId = () => str({ pattern: RESOURCE_ID, patternName: 'a resource id' });

/** ACTIVE: served as asked (or torn down as asked); ERROR: not served, `reason` says why. */
export const RESOURCE_STATUSES = ['ACTIVE', 'ERROR'] as const;
export type ResourceStatusValue = (typeof RESOURCE_STATUSES)[number];

/** Most parts one status lists as left out (the first, by kind and id, when there are more). */
export const MAX_REJECTED = 256;

/** One part of a resource left out of what is served (a port's host entry, a nameserver). */
export const RejectedPart = obj({
  resource: oneOf(RESOURCE_KINDS),
  id: resourceId(),
  reason: str({ max: 1024 }),
});
export type RejectedPart = Infer<typeof RejectedPart>;

export const ResourceStatus = obj({
  resource: oneOf(RESOURCE_KINDS),
  id: resourceId(),
  status: oneOf(RESOURCE_STATUSES),
  reason: optional(str({ max: 1024 })),
  /**
   * The parts served without (a network ACTIVE while one port's entry is left out). The
   * list is complete each time: it replaces what the API kept for the resource's parts.
   */
  rejected: optional(arr(RejectedPart, { max: MAX_REJECTED })),
  /**
   * The resource's revision this status is about, for kinds whose API statuses wait for
   * it (a pool's PENDING_* objects turn ACTIVE once a revision at least theirs is served).
   */
  revision: optional(int({ min: 0 })),
});
export type ResourceStatus = Infer<typeof ResourceStatus>;

export const ReportStatusArgs = obj({
  host: hostname(),
  agent_type: oneOf(AGENT_TYPE_NAMES),
  statuses: arr(ResourceStatus, { max: 1000 }),
});
export type ReportStatusArgs = Infer<typeof ReportStatusArgs>;
