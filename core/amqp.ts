/**
 * AMQP messaging over amqplib: cast, call (direct reply-to, timeout), fanout, host-targeted
 * queues, publisher confirms, dead-lettering and automatic reconnect with backoff.
 *
 * Invariants:
 * - a cast resolves only once the broker confirmed it; while disconnected it waits at most
 *   `timeoutMs` and then rejects with a TransientError (never queues without bound);
 * - a consumer only sees messages that passed `parseMessage`; an invalid one is republished
 *   to `kumo.dead` with the reason in `x-kumo-reason` and acked, and the consumer goes on;
 * - after a reconnect every registered consumer and the topology are declared again and
 *   `onConnect` listeners run with `reconnected: true` (agents resync: hints may be lost).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { TransientError } from '../contracts/errors.ts';
import {
  type ArgsOf,
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  EXCHANGE,
  encodeMessage,
  type MethodName,
  PLUGIN_TOPIC,
  REPORTS_TOPIC,
  type Reply,
} from '../contracts/messages.ts';
import { type Handler, type QueueSpec, startConsumer } from './amqp-consumer.ts';
import type { Logger } from './log.ts';

export type { DeliveryInfo, Handler, QueueSpec } from './amqp-consumer.ts';

export interface Broker {
  start(): Promise<void>;
  close(): Promise<void>;
  isConnected(): boolean;
  cast<M extends MethodName>(
    routingKey: string,
    method: M,
    args: ArgsOf<M>,
    opts?: CastOptions,
  ): Promise<void>;
  fanout<M extends MethodName>(
    exchange: string,
    method: M,
    args: ArgsOf<M>,
    opts?: { timeoutMs?: number },
  ): Promise<void>;
  call<M extends MethodName>(
    routingKey: string,
    method: M,
    args: ArgsOf<M>,
    opts?: { timeoutMs?: number },
  ): Promise<unknown>;
  consume(queue: QueueSpec, handler: Handler): void;
  /** Declares a fanout exchange (idempotent) on every connect. */
  declareFanout(exchange: string): void;
  onConnect(listener: (info: { reconnected: boolean }) => void): void;
}

export interface CastOptions {
  /** Per-message TTL; the broker drops the message after it. */
  expirationMs?: number;
  timeoutMs?: number;
}

export interface BrokerOptions {
  url: string;
  log: Logger;
  /** Default wait for a connection and a confirm. */
  timeoutMs?: number;
  heartbeatSec?: number;
  backoff?: { initialMs: number; maxMs: number };
}

const REPLY_TO = 'amq.rabbitmq.reply-to';
const DEFAULT_TIMEOUT = 10_000;

/** Queues the API consumes; agents declare them too so reports wait for a restarting API. */
export function apiQueue(topic: typeof REPORTS_TOPIC | typeof PLUGIN_TOPIC): QueueSpec {
  return { name: topic, durable: true, bindings: [{ exchange: EXCHANGE, routingKey: topic }] };
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface State {
  conn?: amqp.ChannelModel;
  pub?: amqp.ConfirmChannel;
  stopped: boolean;
  connecting?: Promise<void>;
  everConnected: boolean;
  waiters: (() => void)[];
  pending: Map<string, Pending>;
}

export function createBroker(opts: BrokerOptions): Broker {
  const log = opts.log.child({ component: 'amqp' });
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT;
  const consumers: { queue: QueueSpec; handler: Handler }[] = [];
  const fanouts = new Set<string>();
  const listeners: ((info: { reconnected: boolean }) => void)[] = [];
  const st: State = { stopped: false, everConnected: false, waiters: [], pending: new Map() };

  const connectOnce = async () => {
    const conn = await amqp.connect(withHeartbeat(opts.url, opts.heartbeatSec ?? 10));
    try {
      conn.on('error', (e: Error) => log.warn({ err: e.message }, 'amqp connection error'));
      const pub = await conn.createConfirmChannel();
      pub.on('error', (e: Error) => log.warn({ err: e.message }, 'amqp channel error'));
      await declareTopology(pub, fanouts);
      await pub.consume(REPLY_TO, (m) => m && settleReply(st, m), { noAck: true });
      for (const c of consumers) await startConsumer(conn, pub, c.queue, c.handler, log);
      conn.on('close', () => onClose(conn));
      st.conn = conn;
      st.pub = pub;
    } catch (e) {
      await conn.close().catch(() => {});
      throw e;
    }
  };

  const onClose = (conn: amqp.ChannelModel) => {
    if (st.conn !== conn) return;
    st.conn = undefined;
    st.pub = undefined;
    failPending(st, new TransientError('AMQP connection lost'));
    if (!st.stopped) {
      log.warn('amqp connection closed; reconnecting');
      void connectLoop();
    }
  };

  const connectLoop = (): Promise<void> => {
    st.connecting ??= (async () => {
      const { initialMs, maxMs } = opts.backoff ?? { initialMs: 250, maxMs: 10_000 };
      for (let attempt = 0; !st.stopped; attempt++) {
        try {
          await connectOnce();
          const reconnected = st.everConnected;
          st.everConnected = true;
          log.info({ reconnected }, 'amqp connected');
          for (const w of st.waiters.splice(0)) w();
          for (const l of listeners) l({ reconnected });
          return;
        } catch (e) {
          const delay = Math.min(maxMs, initialMs * 2 ** attempt) * (0.8 + Math.random() * 0.4);
          log.warn(
            { err: (e as Error).message, attempt, delayMs: Math.round(delay) },
            'amqp connect failed',
          );
          await sleep(delay);
        }
      }
    })().finally(() => {
      st.connecting = undefined;
    });
    return st.connecting;
  };

  const channel = async (waitMs: number): Promise<amqp.ConfirmChannel> => {
    if (st.pub) return st.pub;
    if (st.stopped) throw new TransientError('broker closed');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        st.waiters = st.waiters.filter((w) => w !== done);
        reject(new TransientError(`AMQP broker unavailable after ${waitMs} ms`));
      }, waitMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      st.waiters.push(done);
    });
    if (!st.pub) throw new TransientError('AMQP connection lost');
    return st.pub;
  };

  const publish = async (
    exchange: string,
    routingKey: string,
    body: Buffer,
    props: amqp.Options.Publish,
    waitMs: number,
  ) => {
    const ch = await channel(waitMs);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ch.publish(exchange, routingKey, body, props, (err) =>
          err
            ? reject(new TransientError(`publish to ${routingKey} not confirmed`, { cause: err }))
            : resolve(),
        );
      }),
      waitMs,
      `publish to ${routingKey} not confirmed after ${waitMs} ms`,
    );
  };

  const baseProps = (method: string): amqp.Options.Publish => ({
    contentType: 'application/json',
    messageId: randomUUID(),
    type: method,
    timestamp: Math.floor(Date.now() / 1000),
  });

  return {
    async start() {
      st.stopped = false;
      await connectLoop();
    },
    async close() {
      st.stopped = true;
      failPending(st, new TransientError('broker closed'));
      const conn = st.conn;
      st.conn = undefined;
      st.pub = undefined;
      if (conn) await conn.close().catch(() => {});
    },
    isConnected: () => st.pub !== undefined,
    async cast(routingKey, method, args, castOpts = {}) {
      const props = baseProps(method);
      if (castOpts.expirationMs !== undefined)
        props.expiration = String(Math.round(castOpts.expirationMs));
      await publish(
        EXCHANGE,
        routingKey,
        encodeMessage(method, args),
        props,
        castOpts.timeoutMs ?? timeoutMs,
      );
    },
    async fanout(exchange, method, args, fanoutOpts = {}) {
      const wait = fanoutOpts.timeoutMs ?? timeoutMs;
      // Publishing to an exchange nobody declared would close the channel: declare it.
      if (!fanouts.has(exchange)) {
        await (await channel(wait)).assertExchange(exchange, 'fanout', { durable: false });
        fanouts.add(exchange);
      }
      await publish(exchange, '', encodeMessage(method, args), baseProps(method), wait);
    },
    async call(routingKey, method, args, callOpts = {}) {
      const wait = callOpts.timeoutMs ?? timeoutMs;
      const correlationId = randomUUID();
      const reply = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          st.pending.delete(correlationId);
          reject(new TransientError(`call ${method} to ${routingKey} timed out after ${wait} ms`));
        }, wait);
        st.pending.set(correlationId, { resolve, reject, timer });
      });
      const props = {
        ...baseProps(method),
        replyTo: REPLY_TO,
        correlationId,
        expiration: String(wait),
      };
      try {
        await publish(EXCHANGE, routingKey, encodeMessage(method, args), props, wait);
      } catch (e) {
        const p = st.pending.get(correlationId);
        if (p) clearTimeout(p.timer);
        st.pending.delete(correlationId);
        throw e;
      }
      return reply;
    },
    consume(queue, handler) {
      consumers.push({ queue, handler });
      if (st.conn && st.pub) {
        void startConsumer(st.conn, st.pub, queue, handler, log).catch((e: Error) => {
          log.error({ err: e.message, queue: queue.name }, 'consumer setup failed; reconnecting');
          void st.conn?.close().catch(() => {});
        });
      }
    },
    declareFanout(exchange) {
      fanouts.add(exchange);
      void st.pub?.assertExchange(exchange, 'fanout', { durable: false }).catch(() => {});
    },
    onConnect(listener) {
      listeners.push(listener);
    },
  };
}

async function declareTopology(ch: amqp.ConfirmChannel, fanouts: Set<string>) {
  await ch.assertExchange(EXCHANGE, 'topic', { durable: true });
  await ch.assertExchange(DEAD_LETTER_EXCHANGE, 'fanout', { durable: true });
  await ch.assertQueue(DEAD_LETTER_QUEUE, { durable: true, arguments: { 'x-max-length': 10000 } });
  await ch.bindQueue(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, '');
  for (const topic of [REPORTS_TOPIC, PLUGIN_TOPIC] as const) {
    const q = apiQueue(topic);
    await ch.assertQueue(q.name, { durable: true });
    await ch.bindQueue(q.name, EXCHANGE, topic);
  }
  for (const ex of fanouts) await ch.assertExchange(ex, 'fanout', { durable: false });
}

function settleReply(st: State, m: amqp.ConsumeMessage) {
  const id = m.properties.correlationId as string | undefined;
  const pending = id ? st.pending.get(id) : undefined;
  if (!pending || !id) return;
  st.pending.delete(id);
  clearTimeout(pending.timer);
  try {
    const reply = JSON.parse(m.content.toString('utf8')) as Reply<unknown>;
    if (reply.ok) pending.resolve(reply.result);
    else pending.reject(Object.assign(new Error(reply.error.message), { name: reply.error.type }));
  } catch {
    pending.reject(new Error('malformed RPC reply'));
  }
}

function failPending(st: State, err: Error) {
  for (const [id, p] of st.pending) {
    clearTimeout(p.timer);
    p.reject(err);
    st.pending.delete(id);
  }
}

/** Channel operations throw synchronously once a channel is closed; that is not our error. */
function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TransientError(message)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function withHeartbeat(url: string, seconds: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.toString();
}
