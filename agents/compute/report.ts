/**
 * What the compute agent tells the API about an instance (update_instance), in the
 * contract's shape: the report a task ends with, its fault, its spawn timings. Pure.
 *
 * Invariant: every string a report carries fits the contract (one line, bounded), so a
 * report is never refused for what an error message happened to contain.
 */
import type { SpawnTimings, UpdateInstanceArgs } from '../../contracts/instances.ts';
import { oneLine } from '../../contracts/schema.ts';

/** What a reconcile tells the API besides the host, the instance and its power state. */
export type Report = Omit<UpdateInstanceArgs, 'host' | 'instance_id' | 'power_state'>;

/** The phases of a spawn the API shows as `kumo:spawn_timings` (ms). */
export type Phase = keyof SpawnTimings;
export type PhaseTimes = Partial<Record<Phase, number>>;

export function spawnTimings(t: PhaseTimes): SpawnTimings {
  return {
    image: t.image ?? 0,
    define: t.define ?? 0,
    plug: t.plug ?? 0,
    wait_port: t.wait_port ?? 0,
    boot: t.boot ?? 0,
  };
}

export function faultOf(e: unknown): NonNullable<Report['fault']> {
  if (!(e instanceof Error)) return { message: oneLine(String(e), 255) };
  const causes: string[] = [];
  for (let c: unknown = e.cause; c instanceof Error && causes.length < 5; c = c.cause)
    causes.push(`${c.name}: ${c.message}`);
  const details = [`${e.name}: ${e.message}`, ...causes.map((c) => `caused by ${c}`)];
  return { message: oneLine(e.message, 255), details: oneLine(details.join('; '), 65535) };
}

/** The update_instance a reconcile sends: every one carries the task_id it observed. */
export function updateArgs(
  host: string,
  id: string,
  observedTaskId: number | null,
  powerState: number,
  report: Report,
): UpdateInstanceArgs {
  return {
    host,
    instance_id: id,
    power_state: powerState as UpdateInstanceArgs['power_state'],
    ...(observedTaskId !== null ? { observed_task_id: observedTaskId } : {}),
    ...report,
  };
}
