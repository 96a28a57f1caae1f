/**
 * The DHCP agent's side of isolated metadata: whether it is on, and the relay its qdhcp
 * namespaces' haproxies forward to (agents/lib/metadata-relay.ts, socket
 * `<state_path>/dhcp/metadata_proxy`), which asks kumo-api which instance has the source
 * IP on the proxy's network (RPC get_metadata_instance {host, network_id, ip}).
 *
 * Invariants: metadata is on only with `[dhcp] enable_isolated_metadata` and `[metadata]
 * metadata_proxy_shared_secret` both set, and when it is off the agent says why once at
 * start; the relay answers only for networks (a router key is not a DHCP namespace's and
 * finds nothing); the RPC answer passes its contract schema before it is used. The relay
 * lives and dies with the agent process; the haproxies do not (an agent restart leaves
 * them running, and they reach the new relay on the same socket path).
 */

import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { GetMetadataInstanceResult, type MetadataInstance } from '../../contracts/metadata.ts';
import type { Broker } from '../../core/amqp.ts';
import type { Logger } from '../../core/log.ts';
import { type LookupKey, startMetadataRelay } from '../lib/metadata-relay.ts';
import type { HookDeps } from '../run.ts';

export interface DhcpMetadata {
  socket: string;
  secret: string;
  nova: { host: string; port: number };
}

/** The relay's settings when isolated metadata is on, else the reason it is off. */
export function dhcpMetadataOf(
  config: HookDeps['config'],
  stateRoot: string,
): DhcpMetadata | { off: string } {
  const secret = config.metadata.metadata_proxy_shared_secret;
  if (!config.dhcp.enable_isolated_metadata)
    return { off: '[dhcp] enable_isolated_metadata is false' };
  if (!secret) return { off: 'no [metadata] metadata_proxy_shared_secret' };
  return {
    socket: `${stateRoot}/metadata_proxy`,
    secret,
    nova: { host: config.metadata.nova_metadata_host, port: config.metadata.nova_metadata_port },
  };
}

/** get_metadata_instance for a network key; null for any other key. */
export function networkLookup(broker: Broker, host: string) {
  return async (key: LookupKey, ip: string): Promise<MetadataInstance | null> => {
    if (!('network_id' in key)) return null;
    const args = { host, network_id: key.network_id, ip };
    const reply = await broker.call(PLUGIN_TOPIC, 'get_metadata_instance', args);
    return GetMetadataInstanceResult.parse(reply).instance;
  };
}

/** Starts the relay when metadata is on (else logs why not); resolves to its closer. */
export async function startDhcpRelay(
  meta: DhcpMetadata | { off: string },
  broker: Broker,
  host: string,
  log: Logger,
): Promise<() => Promise<void>> {
  if ('off' in meta) {
    log.info({ reason: meta.off }, 'isolated metadata off');
    return async () => {};
  }
  const relay = await startMetadataRelay({ ...meta, lookup: networkLookup(broker, host), log });
  return () => relay.close();
}
