/**
 * What bench/heartbeats.ts sends and how it counts: report_state bodies as
 * kumo-compute-agent sends them, a confirm-channel publisher, and sample statistics over
 * typed arrays.
 *
 * Invariant: nothing here spreads a sample array into call arguments or copies it per
 * sample, so every figure stays computable at 100,000 agents and more.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type amqp from 'amqplib';
import { agentTypeByKind, type ReportStateArgs } from '../contracts/agents.ts';
import { EXCHANGE, encodeMessage } from '../contracts/messages.ts';

const now = () => performance.now();
const COMPUTE = agentTypeByKind('compute');

export const hostName = (prefix: string, i: number) =>
  `${prefix}-${String(i + 1).padStart(5, '0')}`;

/** The 14 configuration keys kumo-compute-agent reports, varied by agent index `i`. */
export function computeConfigurations(i: number): Record<string, number | string> {
  const vcpus = 16 << (i % 3);
  return {
    hypervisor_type: 'QEMU',
    virt_type: 'kvm',
    instances_path: '/var/lib/kumo/instances',
    cpu_model: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz',
    vcpus,
    memory_mb: vcpus * 8192,
    local_gb: 1788,
    free_disk_gb: 1788 - (i % 400),
    vcpus_used: i % vcpus,
    memory_mb_used: (i % vcpus) * 4096,
    local_gb_used: (i % 400) + 20,
    running_vms: i % 12,
    cpu_allocation_ratio: 4,
    ram_allocation_ratio: 1,
  };
}

export function report(host: string, i: number, startFlag: boolean): Buffer {
  const args: ReportStateArgs = {
    agent_state: {
      agent_type: COMPUTE.agentType,
      binary: COMPUTE.binary,
      topic: COMPUTE.topic,
      host,
      configurations: computeConfigurations(i),
      ...(startFlag ? { start_flag: true } : {}),
    },
    time: new Date().toISOString(),
  };
  return encodeMessage('report_state', args);
}

/** Report bodies for the agents `<prefix>-00001`…, by agent index. */
export function reportMaker(prefix: string) {
  return (i: number, startFlag: boolean) => report(hostName(prefix, i), i, startFlag);
}

/** The properties core/amqp's cast sets. */
export function props(expirationMs: number): amqp.Options.Publish {
  return {
    contentType: 'application/json',
    messageId: randomUUID(),
    type: 'report_state',
    timestamp: Math.floor(Date.now() / 1000),
    expiration: String(expirationMs),
  };
}

export interface Publisher {
  ch: amqp.ConfirmChannel;
  /** Publishes; waits for `drain` when the socket buffer is full. */
  send(routingKey: string, body: Buffer, expirationMs: number): Promise<void>;
  nacked(): number;
}

export async function publisher(conn: amqp.ChannelModel): Promise<Publisher> {
  const ch = await conn.createConfirmChannel();
  let nacks = 0;
  const onConfirm = (err: unknown) => {
    if (err) nacks++;
  };
  return {
    ch,
    async send(routingKey, body, expirationMs) {
      if (!ch.publish(EXCHANGE, routingKey, body, props(expirationMs), onConfirm)) {
        await new Promise<void>((r) => ch.once('drain', () => r()));
      }
    },
    nacked: () => nacks,
  };
}

/**
 * Queues `n` bodies (`body(i)`) as fast as confirms allow: a confirm wait per 2,000, so
 * no more than that is ever built and unconfirmed at once. Returns the publish rate.
 */
export async function prefill(
  pub: Publisher,
  routingKey: string,
  n: number,
  body: (i: number) => Buffer,
): Promise<number> {
  const t0 = now();
  const BATCH = 2000;
  for (let i = 0; i < n; i += BATCH) {
    for (let j = i; j < Math.min(n, i + BATCH); j++) await pub.send(routingKey, body(j), 600_000);
    await pub.ch.waitForConfirms();
  }
  if (pub.nacked() > 0) throw new Error(`${pub.nacked()} publishes were nacked by the broker`);
  return n / ((now() - t0) / 1000);
}

/** A growable list of numbers in one typed array: no per-sample object, no spread. */
export class Samples {
  private buf = new Float64Array(1024);
  length = 0;
  push(x: number) {
    if (this.length === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.length++] = x;
  }
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Sorts in place (typed array: numeric order, no comparator calls). */
export function percentile(xs: Float64Array, p: number): number {
  if (xs.length === 0) return Number.NaN;
  xs.sort();
  return xs[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)] as number;
}

/** Largest value without spreading the array into call arguments (stack-safe at any size). */
export function maximum(xs: Float64Array): number {
  let m = Number.NaN;
  for (const x of xs) if (!(x <= m)) m = x;
  return m;
}
