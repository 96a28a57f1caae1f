/**
 * kumo-api's metadata listener as the daemon starts it: on [metadata] bind_host:bind_port
 * when [metadata] metadata_proxy_shared_secret is set; otherwise metadata is off, and the
 * daemon says so in one log line at start.
 *
 * Invariant: no listener without a secret (an unsigned request could never be told from a
 * signed one); `close` stops accepting and ends idle keep-alive connections.
 */
import type { Server } from 'node:http';
import type { KumoConfig } from '../../core/config.ts';
import type { Logger } from '../../core/log.ts';
import type { Db } from '../db/index.ts';
import { buildMetadataApp } from './listener.ts';

export const METADATA_OFF =
  'instance metadata off: [metadata] metadata_proxy_shared_secret is not set';

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeIdleConnections();
  });
}

export async function startMetadata(config: KumoConfig, db: Db, log: Logger) {
  const secret = config.metadata.metadata_proxy_shared_secret;
  if (!secret) {
    log.info(METADATA_OFF);
    return { close: async () => {} };
  }
  const server = buildMetadataApp({ db, secret, log });
  const { bind_host: host, bind_port: port } = config.metadata;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info({ host, port }, 'metadata listener listening');
  return { close: () => closeServer(server) };
}
