/**
 * The compute agent's calls to the API: get_instance, get_config_drive, and waiting for an
 * instance's ports to be ACTIVE (report.ts shapes what it sends back).
 *
 * Invariant: a reply is validated against the contract before anything uses it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GetInstanceResult, type InstanceSpec } from '../../contracts/instances.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { type ConfigDriveFile, GetConfigDriveResult } from '../../contracts/metadata.ts';
import type { Broker } from '../../core/amqp.ts';
import { intentOf } from './target.ts';

export interface RpcDeps {
  broker: Pick<Broker, 'call' | 'cast'>;
  host: string;
}

/** The instance stopped spawning while we waited for its ports. */
export class SpawnAborted extends Error {
  override name = 'SpawnAborted';
}

export async function getInstance(deps: RpcDeps, id: string): Promise<InstanceSpec | null> {
  const args = { host: deps.host, instance_id: id };
  return GetInstanceResult.parse(await deps.broker.call(PLUGIN_TOPIC, 'get_instance', args))
    .instance;
}

/** The config drive's files of an instance of this host (null: the API has none). */
export async function getConfigDrive(deps: RpcDeps, id: string): Promise<ConfigDriveFile[] | null> {
  const args = { host: deps.host, instance_id: id };
  return GetConfigDriveResult.parse(await deps.broker.call(PLUGIN_TOPIC, 'get_config_drive', args))
    .files;
}

/**
 * Polls the API until every port of the instance is ACTIVE: first after 50 ms (the L2
 * agent binds a port in tens of milliseconds), then backing off to one call every 500 ms.
 */
export async function waitPortsActive(deps: RpcDeps, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 50; ; pause = Math.min(500, pause * 1.5)) {
    const spec = await getInstance(deps, id);
    if (spec === null || intentOf(spec) !== 'spawn')
      throw new SpawnAborted('the instance is no longer spawning');
    const waiting = spec.ports.filter((p) => p.status !== 'ACTIVE').map((p) => p.id);
    if (waiting.length === 0 || timeoutMs === 0) return;
    if (Date.now() >= deadline)
      throw new Error(
        `Virtual interface creation failed: port(s) ${waiting.join(', ')} not ACTIVE within ${timeoutMs / 1000} s (vif_plugging_timeout)`,
      );
    await sleep(pause);
  }
}
