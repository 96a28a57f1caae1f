/**
 * The DHCP agent's side of isolated metadata: whether it is on, and the relay its qdhcp
 * namespaces' haproxies forward to (the kit's startAgentRelay, socket
 * `<state_path>/dhcp/metadata_proxy`), which asks kumo-api over RPC which instance has the
 * source IP on the proxy's network (get_metadata_instance {host, network_id, ip}).
 *
 * Invariants: metadata is on only with `[dhcp] enable_isolated_metadata` and `[metadata]
 * metadata_proxy_shared_secret` both set, and when it is off the agent says why once at
 * start. The relay lives and dies with the agent process; the haproxies do not (an agent
 * restart leaves them running, and they reach the new relay on the same socket path).
 */
import type { Broker } from '../../core/amqp.ts';
import type { Logger } from '../../core/log.ts';
import { startAgentRelay } from '../lib/metadata-relay.ts';
import type { HookDeps } from '../run.ts';

const socketOf = (stateRoot: string) => `${stateRoot}/metadata_proxy`;

/** The relay's socket when isolated metadata is on, else undefined. */
export function dhcpRelaySocket(config: HookDeps['config'], stateRoot: string) {
  const on = config.dhcp.enable_isolated_metadata && !!config.metadata.metadata_proxy_shared_secret;
  return on ? socketOf(stateRoot) : undefined;
}

/** Starts the relay when isolated metadata is on (else logs why not); resolves to its closer. */
export async function startDhcpRelay(
  config: HookDeps['config'],
  stateRoot: string,
  broker: Broker,
  log: Logger,
): Promise<() => Promise<void>> {
  if (!config.dhcp.enable_isolated_metadata) {
    log.info('[dhcp] enable_isolated_metadata is false: isolated metadata is off');
    return async () => {};
  }
  const relay = await startAgentRelay({ config, broker, log, socket: socketOf(stateRoot) });
  return async () => relay?.close();
}
