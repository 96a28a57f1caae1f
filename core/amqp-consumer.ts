/**
 * The consuming side of core/amqp.ts: declare a queue, validate every delivery, run the
 * handler, reply to calls, dead-letter what cannot be handled.
 *
 * Invariants: a message is acked only after its handler settled (and, for a call, after
 * the reply was published); an invalid message is republished to `kumo.dead` with the
 * reason in `x-kumo-reason` and acked, so it never blocks the queue; a transient handler
 * failure is requeued after a pause, any other is dead-lettered with its reason.
 *
 * The queue and handler types live here and core/amqp.ts re-exports them, so the two
 * modules depend one way (amqp.ts → amqp-consumer.ts).
 */
import type amqp from 'amqplib';
import { TransientError } from '../contracts/errors.ts';
import {
  DEAD_LETTER_EXCHANGE,
  EXCHANGE,
  type Message,
  parseMessage,
  type Reply,
} from '../contracts/messages.ts';
import type { Logger } from './log.ts';

export interface QueueSpec {
  name: string;
  durable: boolean;
  exclusive?: boolean;
  autoDelete?: boolean;
  /**
   * 'quorum': replicated over the cluster's nodes (Raft), so a message outlives the loss
   * of a node; must be durable, never exclusive or auto-delete. Default: a classic queue,
   * which lives on the node of the connection that declared it.
   */
  type?: 'classic' | 'quorum';
  /** x-message-ttl: the broker drops messages older than this. */
  messageTtlMs?: number;
  /** x-max-length: the oldest messages are dropped beyond it. */
  maxLength?: number;
  /** Its messages matter to an operator: an older declaration holding some is never replaced. */
  keepMessages?: boolean;
  bindings: { exchange: string; routingKey: string }[];
  prefetch?: number;
}

/** The x-arguments a spec declares; every declarer of one queue must send the same. */
export function queueArguments(spec: QueueSpec): Record<string, unknown> {
  return {
    ...(spec.type === 'quorum' ? { 'x-queue-type': 'quorum' } : {}),
    ...(spec.messageTtlMs !== undefined ? { 'x-message-ttl': spec.messageTtlMs } : {}),
    ...(spec.maxLength !== undefined ? { 'x-max-length': spec.maxLength } : {}),
  };
}

const isPreconditionFailed = (e: unknown) => (e as { code?: number }).code === 406;

/**
 * Declares `spec` on a channel of its own and returns that channel. A queue that meets an
 * older declaration of the same name (PRECONDITION_FAILED: the classic or durable queue an
 * earlier Kumo made before these queues became quorum, or heartbeats non-durable) is
 * replaced when nobody uses it: no consumer, and for `keepMessages` queues no message. The
 * old queue's messages were hints, calls or reports that the periodic resync and the
 * callers' timeouts cover. A queue still consumed (an older replica or agent during a
 * rolling upgrade) or holding dead letters is kept as it is and used as it is, with a
 * warning: it is replaced by the first declarer that finds it unused.
 */
export async function declareQueue(
  conn: amqp.ChannelModel,
  spec: QueueSpec,
  log: Logger,
): Promise<amqp.Channel> {
  const options = {
    durable: spec.durable,
    exclusive: spec.exclusive ?? false,
    autoDelete: spec.autoDelete ?? false,
    arguments: queueArguments(spec),
  };
  const open = async () => {
    const ch = await conn.createChannel();
    ch.on('error', (e: Error) =>
      log.warn({ err: e.message, queue: spec.name }, 'consumer channel error'),
    );
    return ch;
  };
  const ch = await open();
  try {
    await ch.assertQueue(spec.name, options);
    return ch;
  } catch (e) {
    if (!isPreconditionFailed(e)) throw e;
    const again = await open();
    const { consumerCount, messageCount } = await again.checkQueue(spec.name);
    if (consumerCount > 0 || (spec.keepMessages && messageCount > 0)) {
      log.warn(
        { queue: spec.name, consumerCount, messageCount, err: (e as Error).message },
        'an older declaration of this queue is in use; using it as it is',
      );
      return again;
    }
    log.warn({ queue: spec.name, err: (e as Error).message }, 'replacing an older declaration');
    await again.deleteQueue(spec.name);
    await again.assertQueue(spec.name, options);
    return again;
  }
}

export interface DeliveryInfo {
  queue: string;
  redelivered: boolean;
}

export type Handler = (message: Message, info: DeliveryInfo) => Promise<unknown>;

/**
 * Consumes `queue` with `handler`. When the broker cancels the consumer (its classic queue
 * died with its node, or was deleted) the queue is declared and consumed again after a
 * second, for as long as `alive()` says the connection is still the broker's current one.
 */
export async function startConsumer(
  conn: amqp.ChannelModel,
  pub: amqp.ConfirmChannel,
  queue: QueueSpec,
  handler: Handler,
  log: Logger,
  alive: () => boolean = () => true,
) {
  const ch = await declareQueue(conn, queue, log);
  await ch.prefetch(queue.prefetch ?? 32);
  for (const b of queue.bindings) {
    if (b.exchange !== EXCHANGE) await ch.assertExchange(b.exchange, 'fanout', { durable: false });
    await ch.bindQueue(queue.name, b.exchange, b.routingKey);
  }
  const settle = createSettler(ch);
  const again = () => {
    if (!alive()) return;
    startConsumer(conn, pub, queue, handler, log, alive).catch((e: Error) => {
      log.warn({ err: e.message, queue: queue.name }, 'consuming again failed; retrying');
      setTimeout(again, 1000);
    });
  };
  await ch.consume(queue.name, (m) => {
    if (!m) {
      log.warn({ queue: queue.name }, 'the broker cancelled the consumer; consuming again');
      void ch.close().catch(() => {});
      setTimeout(again, 1000);
      return;
    }
    settle.received(m);
    void deliver(settle, pub, queue.name, m, handler, log);
  });
}

type Settler = ReturnType<typeof createSettler>;

/**
 * Acks coalesced per event-loop turn: every ack below the lowest delivery still being
 * handled goes out as one `multiple` ack, the rest one by one. A delivery is never
 * covered by a multiple ack before its own handler settled it.
 */
function createSettler(ch: amqp.Channel) {
  const unsettled = new Set<number>();
  let acked: amqp.Message[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    let lowest = Number.POSITIVE_INFINITY;
    for (const tag of unsettled) lowest = Math.min(lowest, tag);
    let last: amqp.Message | undefined;
    for (const m of acked) {
      const tag = m.fields.deliveryTag;
      if (tag > lowest) safe(() => ch.ack(m));
      else if (!last || tag > last.fields.deliveryTag) last = m;
    }
    acked = [];
    if (last) {
      const upTo = last;
      safe(() => ch.ack(upTo, true));
    }
  };
  return {
    received: (m: amqp.Message) => unsettled.add(m.fields.deliveryTag),
    ack(m: amqp.Message) {
      unsettled.delete(m.fields.deliveryTag);
      acked.push(m);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    nack(m: amqp.Message, requeue: boolean) {
      unsettled.delete(m.fields.deliveryTag);
      safe(() => ch.nack(m, false, requeue));
    },
  };
}

async function deliver(
  settle: Settler,
  pub: amqp.ConfirmChannel,
  queue: string,
  m: amqp.ConsumeMessage,
  handler: Handler,
  log: Logger,
) {
  let message: Message;
  try {
    message = parseMessage(m.content);
  } catch (e) {
    await deadLetter(settle, pub, queue, m, (e as Error).message, log);
    return;
  }
  const { replyTo, correlationId } = m.properties;
  try {
    const result = await handler(message, { queue, redelivered: m.fields.redelivered });
    if (replyTo && correlationId)
      sendReply(pub, replyTo, correlationId, { ok: true, result: result ?? null });
    settle.ack(m);
  } catch (e) {
    const err = e as Error;
    log.warn({ err: err.message, method: message.method, queue }, 'handler failed');
    if (replyTo && correlationId) {
      sendReply(pub, replyTo, correlationId, {
        ok: false,
        error: { type: err.name, message: err.message },
      });
      settle.ack(m);
    } else if (err instanceof TransientError) {
      setTimeout(() => settle.nack(m, true), 1000);
    } else {
      await deadLetter(settle, pub, queue, m, `handler failed: ${err.message}`, log);
    }
  }
}

async function deadLetter(
  settle: Settler,
  pub: amqp.ConfirmChannel,
  queue: string,
  m: amqp.ConsumeMessage,
  reason: string,
  log: Logger,
) {
  log.warn({ queue, reason, messageId: m.properties.messageId }, 'message dead-lettered');
  const headers = {
    ...(m.properties.headers ?? {}),
    'x-kumo-reason': reason,
    'x-kumo-queue': queue,
  };
  try {
    await new Promise<void>((resolve, reject) =>
      pub.publish(
        DEAD_LETTER_EXCHANGE,
        '',
        m.content,
        { ...m.properties, headers, expiration: undefined },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    settle.ack(m);
  } catch {
    settle.nack(m, false);
  }
}

function sendReply(
  pub: amqp.ConfirmChannel,
  replyTo: string,
  correlationId: string,
  reply: Reply<unknown>,
) {
  safe(() =>
    pub.publish('', replyTo, Buffer.from(JSON.stringify(reply)), {
      correlationId,
      contentType: 'application/json',
    }),
  );
}

export function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* the channel closed under us; the broker redelivers unacked messages */
  }
}
