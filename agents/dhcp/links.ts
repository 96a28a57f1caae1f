/**
 * The DHCP agent's links to kumo-api and Open vSwitch: the `network` kind's status sink
 * (`report_status` casts to q-plugin) and the agent's one OVSDB connection.
 *
 * Invariants:
 * - a status reason is what an operator can act on: a failed command is named by its
 *   program, how it ended and its stderr (not its whole argv, which would crowd the
 *   stderr out of the contract's 1024 characters);
 * - one `report_status` carries at most STATUS_BATCH statuses (after a resync every
 *   status is sent again);
 * - the OVSDB connection is opened on first use (a host serving nothing never needs it),
 *   reconnects by itself, is opened again after a failed connect, and closes on stop.
 */
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { Broker } from '../../core/amqp.ts';
import type { KumoConfig } from '../../core/config.ts';
import { CommandError } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import { createStatusReporter, type StatusReporter } from '../../core/status.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';

export const STATUS_BATCH = 500;
const REASON_MAX = 1024;

/** A failure as a status reason. */
export function reasonOf(e: Error): string {
  if (!(e instanceof CommandError)) return e.message.slice(0, REASON_MAX);
  const how = e.timedOut
    ? 'timed out'
    : e.signal
      ? `killed by ${e.signal}`
      : `exited ${e.exitCode}`;
  const where = e.netns ? ` in ${e.netns}` : '';
  const stderr = e.stderr.trim().split('\n').slice(-3).join(' | ');
  return `${e.argv[0]}${where} ${how}${stderr ? `: ${stderr}` : ''}`.slice(0, REASON_MAX);
}

/** A network's status: ACTIVE, or ERROR with the failure's reason. */
export function networkStatus(id: string, failure?: Error): ResourceStatus {
  return failure
    ? { resource: 'network', id, status: 'ERROR', reason: reasonOf(failure) }
    : { resource: 'network', id, status: 'ACTIVE' };
}

/** The reporter whose sink casts `report_status` for this host's DHCP agent. */
export function networkReporter(broker: Broker, host: string): StatusReporter<ResourceStatus> {
  return createStatusReporter<ResourceStatus>({
    async send(changes) {
      for (let i = 0; i < changes.length; i += STATUS_BATCH) {
        const statuses = changes.slice(i, i + STATUS_BATCH).map((c) => c.value);
        await broker.cast(PLUGIN_TOPIC, 'report_status', {
          host,
          agent_type: 'DHCP agent',
          statuses,
        });
      }
    },
  });
}

export type LazyOvsdb = ReturnType<typeof lazyOvsdb>;

export function lazyOvsdb(config: KumoConfig, log: Logger) {
  let client: Promise<OvsdbClient> | undefined;
  return {
    get(): Promise<OvsdbClient> {
      client ??= createOvsdbClient({
        socket: config.ovs.ovsdb_connection,
        log: log.child({ component: 'ovsdb' }),
        timeoutMs: 10_000,
        reconnect: { initialMs: 200, maxMs: 5000 },
      }).catch((e: unknown) => {
        client = undefined;
        throw e;
      });
      return client;
    },
    async close() {
      const c = await client?.catch(() => undefined);
      await c?.close();
    },
  };
}
