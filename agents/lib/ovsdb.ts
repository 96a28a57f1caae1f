/**
 * An agent's one OVSDB connection, opened on first use.
 *
 * Invariants: a host that never needs OVSDB never connects; once open the connection
 * reconnects by itself (host/session); a failed first connect is retried by the next
 * use, never cached; `close()` on agent stop closes whatever was opened; with `metrics`,
 * every reconnect (never the first connect) is counted.
 */
import type { KumoConfig } from '../../core/config.ts';
import type { Logger } from '../../core/log.ts';
import type { LinkMetrics } from '../../core/metrics.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';

export interface LazyOvsdb {
  get(): Promise<OvsdbClient>;
  close(): Promise<void>;
}

export function lazyOvsdb(config: KumoConfig, log: Logger, metrics?: LinkMetrics): LazyOvsdb {
  let client: Promise<OvsdbClient> | undefined;
  return {
    get() {
      client ??= createOvsdbClient({
        socket: config.ovs.ovsdb_connection,
        log: log.child({ component: 'ovsdb' }),
        timeoutMs: 10_000,
        reconnect: { initialMs: 200, maxMs: 5000 },
      }).then(
        (c) => {
          if (metrics) c.onReconnected(() => metrics.ovsdbReconnects.inc());
          return c;
        },
        (e: unknown) => {
          client = undefined;
          throw e;
        },
      );
      return client;
    },
    async close() {
      const c = await client?.catch(() => undefined);
      await c?.close();
    },
  };
}
