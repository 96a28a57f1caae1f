/**
 * Resource status reports to kumo-api (`report_status` casts to q-plugin), for the agents
 * whose resources have no richer status message of their own (dhcp now; l3, lbaas and
 * volume next).
 *
 * Invariants:
 * - a status reason is what an operator can act on: a failed command is named by its
 *   program, how it ended and its stderr (not its whole argv, which would crowd the
 *   stderr out of the contract's 1024 characters); it is one line without control
 *   characters, else the API would refuse the whole report with everyone's statuses;
 * - one `report_status` carries at most STATUS_BATCH statuses (after a resync every
 *   status is sent again).
 */
import type { AgentKind } from '../../contracts/agents.ts';
import { agentTypeByKind } from '../../contracts/agents.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { oneLine } from '../../contracts/schema.ts';
import type { ResourceKind, ResourceStatus } from '../../contracts/status.ts';
import type { Broker } from '../../core/amqp.ts';
import { CommandError } from '../../core/exec.ts';
import { createStatusReporter, type StatusReporter } from '../../core/status.ts';

export const STATUS_BATCH = 500;
const REASON_MAX = 1024;

/** A failure as a status reason. */
export function reasonOf(e: Error): string {
  if (!(e instanceof CommandError)) return oneLine(e.message, REASON_MAX);
  const how = e.timedOut
    ? 'timed out'
    : e.signal
      ? `killed by ${e.signal}`
      : `exited ${e.exitCode}`;
  const where = e.netns ? ` in ${e.netns}` : '';
  const stderr = e.stderr.trim().split('\n').slice(-3).join(' | ');
  return oneLine(`${e.argv[0]}${where} ${how}${stderr ? `: ${stderr}` : ''}`, REASON_MAX);
}

/** A resource's status: ACTIVE, or ERROR with the failure's reason. */
export function resourceStatus(
  resource: ResourceKind,
  id: string,
  failure?: Error,
): ResourceStatus {
  return failure
    ? { resource, id, status: 'ERROR', reason: reasonOf(failure) }
    : { resource, id, status: 'ACTIVE' };
}

/** The reporter whose sink casts `report_status` for this host's agent of `kind`. */
export function statusReporter(
  broker: Pick<Broker, 'cast'>,
  host: string,
  kind: AgentKind,
): StatusReporter<ResourceStatus> {
  const agentType = agentTypeByKind(kind).agentType;
  return createStatusReporter<ResourceStatus>({
    async send(changes) {
      for (let i = 0; i < changes.length; i += STATUS_BATCH) {
        const statuses = changes.slice(i, i + STATUS_BATCH).map((c) => c.value);
        await broker.cast(PLUGIN_TOPIC, 'report_status', {
          host,
          agent_type: agentType,
          statuses,
        });
      }
    },
  });
}
