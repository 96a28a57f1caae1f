/**
 * bench/scale's simulator side of AMQP: one connection shared by a slice of simulated hosts
 * (real agents each open their own; core/amqp's per-agent machinery for 3,000 agents would
 * measure the simulator, not Kumo), speaking exactly what core/amqp.ts puts on the wire:
 * casts and calls on the `kumo` exchange with the same properties, calls answered through
 * direct reply-to, each host's queues declared with core's own specs (hostQueueSpec: quorum,
 * 1 h TTL, 10,000 max; the topic fanout queue classic auto-delete).
 *
 * Invariant: every call settles (reply, error reply or timeout) and is recorded once, with
 * its latency from publish to reply, in the link's stats; a message the link cannot parse
 * or handle is counted as an error, never thrown into the connection.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import amqp from 'amqplib';
import {
  EXCHANGE,
  encodeMessage,
  fanoutExchange,
  hostQueue,
  type Message,
  type MethodName,
  PLUGIN_TOPIC,
  parseMessage,
  type Reply,
} from '../contracts/messages.ts';
import { hostQueueSpec, NACKED, nackStreaks } from '../core/amqp.ts';
import { type QueueSpec, queueArguments } from '../core/amqp-consumer.ts';

const REPLY_TO = 'amq.rabbitmq.reply-to';
/** Parallel channels for queue declarations: a quorum declare waits for Raft on three nodes. */
const DECLARE_CHANNELS = 16;
/** Connections a declaration may lose to the broker's refusals before the bench gives up. */
const RETRIES = 20;

/** How a call failed, for the report: the broker, the server or the clock. */
const failure = (method: string, kind: 'refused' | 'error reply' | 'timeout') =>
  `${method} (${kind})`;

export interface LinkStats {
  /** Latency (ms) of each completed call, by method. */
  latency: Map<string, number[]>;
  /** Failed calls by method and how (refused, error reply, timeout), failed casts by method. */
  errors: Map<string, number>;
  /** Deliveries on host and fanout queues, by method (hint, resync…). */
  received: Map<string, number>;
}

export const emptyStats = (): LinkStats => ({
  latency: new Map(),
  errors: new Map(),
  received: new Map(),
});

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

interface Pending {
  method: string;
  t0: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export type Deliver = (queue: string, message: Message) => void;

export interface Link {
  stats: LinkStats;
  /** The broker's reasons for refusing declarations that a retry then got past. */
  declareFailures: string[];
  call(method: MethodName, args: unknown, timeoutMs?: number): Promise<unknown>;
  cast(routingKey: string, method: MethodName, args: unknown, expirationMs?: number): Promise<void>;
  /** Declares and consumes `topic.host` (quorum) and `topic_fanout.host` for each pair. */
  attach(pairs: { topic: string; host: string }[]): Promise<void>;
  close(): Promise<void>;
}

const props = (method: string): amqp.Options.Publish => ({
  contentType: 'application/json',
  messageId: randomUUID(),
  type: method,
  timestamp: Math.floor(Date.now() / 1000),
});

/** The auto-delete queue an agent binds to its topic's fanout (core/agent.ts). */
function fanoutSpec(topic: string, host: string): QueueSpec {
  return {
    name: `${fanoutExchange(topic)}.${host}`,
    durable: false,
    autoDelete: true,
    bindings: [{ exchange: fanoutExchange(topic), routingKey: '' }],
  };
}

async function declareSome(conn: amqp.ChannelModel, specs: QueueSpec[], at: { next: number }) {
  const worker = async () => {
    const ch = await conn.createChannel();
    while (at.next < specs.length) {
      const spec = specs[at.next++] as QueueSpec;
      try {
        await ch.assertQueue(spec.name, {
          durable: spec.durable,
          exclusive: false,
          autoDelete: spec.autoDelete ?? false,
          arguments: queueArguments(spec),
        });
        for (const b of spec.bindings) {
          if (b.exchange !== EXCHANGE)
            await ch.assertExchange(b.exchange, 'fanout', { durable: false });
          await ch.bindQueue(spec.name, b.exchange, b.routingKey);
        }
      } catch (e) {
        at.next = Math.min(at.next, specs.indexOf(spec));
        throw e;
      }
    }
    await ch.close();
  };
  await Promise.all(Array.from({ length: DECLARE_CHANNELS }, worker));
}

/**
 * Declares `specs` on connections of their own, as agents declare on connect: when the
 * broker refuses one and closes the connection (a quorum queue whose Raft group did not
 * form in time), a new connection goes on from the first undeclared queue after a second,
 * as core/amqp's reconnect would, up to RETRIES times; `failures` counts those refusals.
 */
async function declareAll(url: string, specs: QueueSpec[], failures: string[]) {
  const at = { next: 0 };
  for (let attempt = 0; ; attempt++) {
    const conn = await amqp.connect(url, { timeout: 10_000 });
    let closedBy = '';
    conn.on('error', (e: Error) => {
      closedBy = e.message;
    });
    try {
      await declareSome(conn, specs, at);
      await conn.close().catch(() => {});
      return;
    } catch (e) {
      await conn.close().catch(() => {});
      failures.push(closedBy || (e as Error).message);
      if (attempt >= RETRIES)
        throw new Error(
          `declaring queues: ${failures.at(-1)} (${at.next} of ${specs.length} declared)`,
        );
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function settleReply(pending: Map<string, Pending>, stats: LinkStats, m: amqp.ConsumeMessage) {
  const id = m.properties.correlationId as string | undefined;
  const p = id ? pending.get(id) : undefined;
  if (!p || !id) return;
  pending.delete(id);
  clearTimeout(p.timer);
  let reply: Reply<unknown>;
  try {
    reply = JSON.parse(m.content.toString('utf8')) as Reply<unknown>;
  } catch {
    bump(stats.errors, p.method);
    p.reject(new Error('malformed RPC reply'));
    return;
  }
  if (!reply.ok) {
    bump(stats.errors, failure(p.method, 'error reply'));
    p.reject(new Error(`${p.method}: ${reply.error.type}: ${reply.error.message}`));
    return;
  }
  const list = stats.latency.get(p.method) ?? [];
  list.push(performance.now() - p.t0);
  stats.latency.set(p.method, list);
  p.resolve(reply.result);
}

/** Opens one connection to `url`; `deliver` gets every valid message on the hosts' queues. */
export async function openLink(url: string, deliver: Deliver, prefetch = 256): Promise<Link> {
  const conn = await amqp.connect(url, { timeout: 10_000 });
  const stats = emptyStats();
  const pending = new Map<string, Pending>();
  conn.on('error', () => {});
  const declareFailures: string[] = [];
  const openPub = async () => {
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => {});
    await ch.consume(REPLY_TO, (m) => m && settleReply(pending, stats, m), { noAck: true });
    return ch;
  };
  let pub = await openPub();
  /** As core/amqp.ts: nothing but nacks for a key for 2 s, and the channel is replaced. */
  const nacks = nackStreaks();
  let renewing = false;
  const noteConfirm = (key: string, nacked: boolean) => {
    if (!nacks.note(key, nacked) || renewing) return;
    renewing = true;
    const old = pub;
    void openPub()
      .then((ch) => {
        pub = ch;
        return old.close();
      })
      .catch(() => {})
      .finally(() => {
        renewing = false;
      });
  };
  const cons = await conn.createChannel();
  cons.on('error', () => {});
  await cons.prefetch(prefetch);

  const publish = (routingKey: string, body: Buffer, p: amqp.Options.Publish) =>
    new Promise<void>((resolve, reject) => {
      try {
        const ch = pub;
        ch.publish(EXCHANGE, routingKey, body, p, (err) => {
          if (ch === pub) noteConfirm(routingKey, err?.message === NACKED);
          if (err) reject(new Error(`publish to ${routingKey} not confirmed (${err.message})`));
          else resolve();
        });
      } catch (e) {
        reject(e as Error);
      }
    });

  const onDelivery = (queue: string) => (m: amqp.ConsumeMessage | null) => {
    if (!m) return;
    cons.ack(m);
    try {
      const message = parseMessage(m.content);
      bump(stats.received, message.method);
      deliver(queue, message);
    } catch {
      bump(stats.errors, 'delivery');
    }
  };

  return {
    stats,
    declareFailures,
    call(method, args, timeoutMs = 30_000) {
      const correlationId = randomUUID();
      const t0 = performance.now();
      const reply = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(correlationId);
          bump(stats.errors, failure(method, 'timeout'));
          reject(new Error(`call ${method} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(correlationId, { method, t0, resolve, reject, timer });
      });
      const p = {
        ...props(method),
        replyTo: REPLY_TO,
        correlationId,
        expiration: String(timeoutMs),
      };
      publish(PLUGIN_TOPIC, encodeMessage(method, args as never), p).catch((e: Error) => {
        const entry = pending.get(correlationId);
        if (!entry) return;
        pending.delete(correlationId);
        clearTimeout(entry.timer);
        bump(stats.errors, failure(method, 'refused'));
        entry.reject(e);
      });
      return reply;
    },
    async cast(routingKey, method, args, expirationMs) {
      const p = props(method);
      if (expirationMs !== undefined) p.expiration = String(expirationMs);
      await publish(routingKey, encodeMessage(method, args as never), p).catch((e: Error) => {
        bump(stats.errors, method);
        throw e;
      });
    },
    async attach(pairs) {
      const specs = pairs.flatMap(({ topic, host }) => [
        hostQueueSpec(hostQueue(topic, host)),
        fanoutSpec(topic, host),
      ]);
      await declareAll(url, specs, declareFailures);
      for (const spec of specs) await cons.consume(spec.name, onDelivery(spec.name));
    },
    async close() {
      for (const p of pending.values()) clearTimeout(p.timer);
      pending.clear();
      await conn.close().catch(() => {});
    },
  };
}
