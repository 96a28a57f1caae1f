/**
 * The compute agent's side of the API contract: get_instance, waiting for an instance's
 * ports to be ACTIVE, and the parts of an update_instance report (fault, spawn timings).
 *
 * Invariant: every string a report carries fits the contract (one line, bounded), so a
 * report is never refused for what an error message happened to contain.
 */

import {
  GetInstanceResult,
  type InstanceSpec,
  type SpawnTimings,
  type UpdateInstanceArgs,
} from '../../contracts/instances.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Broker } from '../../core/amqp.ts';
import type { StepTimes } from './apply.ts';
import { type ComputeSettings, intentOf } from './desired.ts';

/** What a reconcile tells the API besides the host, the instance and its power state. */
export type Report = Omit<UpdateInstanceArgs, 'host' | 'instance_id' | 'power_state'>;

export interface RpcDeps {
  broker: Pick<Broker, 'call' | 'cast'>;
  settings: ComputeSettings;
}

/** The instance stopped spawning while we waited for its ports. */
export class SpawnAborted extends Error {
  override name = 'SpawnAborted';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function getInstance(deps: RpcDeps, id: string): Promise<InstanceSpec | null> {
  const args = { host: deps.settings.host, instance_id: id };
  return GetInstanceResult.parse(await deps.broker.call(PLUGIN_TOPIC, 'get_instance', args))
    .instance;
}

/**
 * Polls the API until every port of the instance is ACTIVE: first after 50 ms (the L2
 * agent binds a port in tens of milliseconds), then backing off to one call every 500 ms.
 */
export async function waitPortsActive(deps: RpcDeps, id: string): Promise<void> {
  const timeoutMs = deps.settings.vifPluggingTimeoutMs;
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

export function spawnTimings(t: StepTimes): SpawnTimings {
  return {
    image: (t.images ?? 0) + (t.files ?? 0),
    define: (t.define ?? 0) + (t.start ?? 0),
    plug: t.plug ?? 0,
    wait_port: t['wait-ports'] ?? 0,
    boot: t.resume ?? 0,
  };
}

/** Contract strings carry no control characters: newlines of stacks and libvirt become spaces. */
const oneLine = (s: string, max: number) =>
  s
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .trim()
    .slice(0, max);

export function faultOf(e: unknown): NonNullable<Report['fault']> {
  if (!(e instanceof Error)) return { message: oneLine(String(e), 255) };
  const causes: string[] = [];
  for (let c: unknown = e.cause; c instanceof Error && causes.length < 5; c = c.cause)
    causes.push(`${c.name}: ${c.message}`);
  const details = [`${e.name}: ${e.message}`, ...causes.map((c) => `caused by ${c}`)];
  return { message: oneLine(e.message, 255), details: oneLine(details.join('; '), 65535) };
}
