/**
 * An agent's one OVSDB connection, opened on first use.
 *
 * Invariants: a host that never needs OVSDB never connects; once open the connection
 * reconnects by itself (host/session); a failed first connect is retried by the next
 * use, never cached; `close()` on agent stop closes whatever was opened.
 */
import type { KumoConfig } from '../../core/config.ts';
import type { Logger } from '../../core/log.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';

export interface LazyOvsdb {
  get(): Promise<OvsdbClient>;
  close(): Promise<void>;
}

export function lazyOvsdb(config: KumoConfig, log: Logger): LazyOvsdb {
  let client: Promise<OvsdbClient> | undefined;
  return {
    get() {
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
