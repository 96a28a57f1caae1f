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
 *   `onConnect` listeners run with `reconnected: true` (agents resync: hints may be lost);
 * - with several brokers (a cluster, `url` a list) a connection goes to one at a time, in
 *   order; a failed attempt or a lost connection moves on to the next, and the backoff
 *   applies after a whole round failed;
 * - a nacked publish rejects with a TransientError; nothing but nacks for one routing key
 *   for 2 s reopens the connection (after a quorum leader's node dies, RabbitMQ 3.10 may
 *   nack a channel's publishes to that queue for good);
 * - with `metrics`, every call is observed once with its outcome (ok, error, timeout: no
 *   reply in time), every reconnect and every unconfirmed publish (by reason) counted.
 *
 * Queue kinds (see `apiQueue`, `hostQueueSpec`): what must outlive a broker node (RPC
 * requests to kumo-api, hints and calls to an agent's host queue, dead letters) sits on
 * quorum queues; heartbeats sit on a classic, non-durable queue with per-message TTLs,
 * where a lost one costs nothing and a queue lost with its node is declared anew by the
 * next client that connects.
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
import { declareQueue, type Handler, type QueueSpec, startConsumer } from './amqp-consumer.ts';
import type { Logger } from './log.ts';
import type { AmqpMetrics } from './metrics.ts';

export type { DeliveryInfo, Handler, QueueSpec } from './amqp-consumer.ts';

export interface Broker {
  start(): Promise<void>;
  close(): Promise<void>;
  isConnected(): boolean;
  /** host:port of the broker this client is connected to, if it is. */
  connectedTo(): string | undefined;
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
  /** One broker, or the nodes of a cluster in the order to try them ([DEFAULT] transport_url). */
  url: string | readonly string[];
  log: Logger;
  /** Default wait for a connection and a confirm. */
  timeoutMs?: number;
  heartbeatSec?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** Call durations, reconnects and unconfirmed publishes; none counted when absent. */
  metrics?: AmqpMetrics;
}

const REPLY_TO = 'amq.rabbitmq.reply-to';
/** A broker that does not finish the AMQP handshake in this time is skipped for the next. */
const CONNECT_TIMEOUT_MS = 5000;
/** amqplib's error for a publish the broker nacked. */
export const NACKED = 'message nacked';
/** Nothing but nacks for one routing key this long reopens the connection. */
const NACK_STREAK_MS = 2000;

/**
 * Per routing key, when its unbroken run of nacked publishes began. `note` says whether a
 * confirm (acked or nacked) ends a run of nothing but nacks lasting `streakMs`; then every
 * run is forgotten, as after `reset` (a new channel).
 */
export function nackStreaks(streakMs = NACK_STREAK_MS) {
  const since = new Map<string, number>();
  return {
    note(key: string, nacked: boolean): boolean {
      const start = since.get(key);
      if (!nacked) since.delete(key);
      else if (start === undefined) since.set(key, Date.now());
      else if (Date.now() - start >= streakMs) {
        since.clear();
        return true;
      }
      return false;
    },
    reset: () => since.clear(),
  };
}
const DEFAULT_TIMEOUT = 10_000;

/**
 * Queues the API consumes, shared by every replica; agents declare them too, so calls wait
 * for a restarting API. RPC requests (q-plugin) are on a quorum queue: a call published to
 * a node that then dies is still answered. Heartbeats are on a classic, non-durable queue:
 * each carries a TTL of one report interval and the next one replaces it, so losing some
 * costs nothing, and a queue lost with its node is declared again on a live node by the
 * first client that reconnects (a durable classic queue would stay unusable until its node
 * came back).
 */
export function apiQueue(topic: typeof REPORTS_TOPIC | typeof PLUGIN_TOPIC): QueueSpec {
  const bindings = [{ exchange: EXCHANGE, routingKey: topic }];
  return topic === PLUGIN_TOPIC
    ? { name: topic, durable: true, type: 'quorum', bindings }
    : { name: topic, durable: false, bindings };
}

/** Hints and calls queued for a host longer than this are dropped (a resync replaces them). */
export const HOST_QUEUE_TTL_MS = 3_600_000;

/**
 * An agent's host queue (`<topic>.<host>`): hints, resyncs and calls for this agent. A
 * quorum queue, so a hint the API had confirmed survives the loss of any one broker node;
 * bounded in age and length, so a host that never comes back does not grow it forever.
 */
export function hostQueueSpec(name: string): QueueSpec {
  return {
    name,
    durable: true,
    type: 'quorum',
    messageTtlMs: HOST_QUEUE_TTL_MS,
    maxLength: 10_000,
    bindings: [{ exchange: EXCHANGE, routingKey: name }],
  };
}

/** Dead letters: kept across node losses for the operator to read, at most 10,000. */
const DEAD_LETTERS: QueueSpec = {
  name: DEAD_LETTER_QUEUE,
  durable: true,
  type: 'quorum',
  maxLength: 10_000,
  keepMessages: true,
  bindings: [{ exchange: DEAD_LETTER_EXCHANGE, routingKey: '' }],
};

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
  /** The next broker to try, as an index into the URL list (modulo its length). */
  cursor: number;
  /** host:port of the broker connected to. */
  connectedTo?: string;
  /** Runs of nacked publishes per routing key on the current channel. */
  nacks: ReturnType<typeof nackStreaks>;
}

export function createBroker(opts: BrokerOptions): Broker {
  const log = opts.log.child({ component: 'amqp' });
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT;
  const consumers: { queue: QueueSpec; handler: Handler }[] = [];
  const fanouts = new Set<string>();
  const listeners: ((info: { reconnected: boolean }) => void)[] = [];
  const st: State = {
    stopped: false,
    everConnected: false,
    waiters: [],
    pending: new Map(),
    cursor: 0,
    nacks: nackStreaks(),
  };
  const urls = typeof opts.url === 'string' ? [opts.url] : [...opts.url];
  if (urls.length === 0) throw new Error('createBroker: no broker URL');

  const connectOnce = async (url: string) => {
    const conn = await amqp.connect(withHeartbeat(url, opts.heartbeatSec ?? 10), {
      timeout: CONNECT_TIMEOUT_MS,
    });
    const alive = () => st.conn === conn;
    try {
      conn.on('error', (e: Error) => log.warn({ err: e.message }, 'amqp connection error'));
      const pub = await conn.createConfirmChannel();
      pub.on('error', (e: Error) => log.warn({ err: e.message }, 'amqp channel error'));
      // Publishing needs this channel: if the broker closes it alone, start over.
      pub.on('close', () => {
        if (st.conn !== conn) return;
        log.warn('amqp publish channel closed; reconnecting');
        void conn.close().catch(() => {});
      });
      await declareTopology(conn, pub, fanouts, log);
      await pub.consume(REPLY_TO, (m) => m && settleReply(st, m), { noAck: true });
      st.conn = conn;
      for (const c of consumers) await startConsumer(conn, pub, c.queue, c.handler, log, alive);
      conn.on('close', () => onClose(conn));
      st.pub = pub;
      st.connectedTo = brokerAddress(url);
    } catch (e) {
      if (st.conn === conn) st.conn = undefined;
      await conn.close().catch(() => {});
      throw e;
    }
  };

  const onClose = (conn: amqp.ChannelModel) => {
    if (st.conn !== conn) return;
    st.conn = undefined;
    st.pub = undefined;
    st.connectedTo = undefined;
    st.nacks.reset();
    // The broker we lost is likely down: the next attempt goes to the next one.
    st.cursor++;
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
        const url = urls[st.cursor % urls.length] as string;
        try {
          await connectOnce(url);
          if (st.stopped) {
            // close() ran while this attempt was under way: it found no connection to close.
            const conn = st.conn;
            st.conn = undefined;
            st.pub = undefined;
            await conn?.close().catch(() => {});
            return;
          }
          const reconnected = st.everConnected;
          st.everConnected = true;
          log.info({ reconnected, broker: brokerAddress(url) }, 'amqp connected');
          if (reconnected) opts.metrics?.reconnects.inc();
          for (const w of st.waiters.splice(0)) w();
          for (const l of listeners) l({ reconnected });
          return;
        } catch (e) {
          st.cursor++;
          // Straight on to the next broker; back off once a whole round has failed.
          const round = Math.floor(attempt / urls.length);
          const endOfRound = (attempt + 1) % urls.length === 0;
          const delay = endOfRound
            ? Math.min(maxMs, initialMs * 2 ** round) * (0.8 + Math.random() * 0.4)
            : 0;
          log.warn(
            {
              err: (e as Error).message,
              broker: brokerAddress(url),
              attempt,
              delayMs: Math.round(delay),
            },
            'amqp connect failed',
          );
          if (delay > 0) await sleep(delay);
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

  /**
   * RabbitMQ 3.10 nacks every publish to a quorum queue on a channel that first published
   * to it while the queue elected a new leader (the channel keeps the dead one). Only a
   * fresh channel recovers, and consumers publish on this one too: once one routing key
   * has seen nothing but nacks for NACK_STREAK_MS, the connection is reopened. A single
   * burst of nacks (a classic queue dying with its node) reopens nothing.
   */
  const noteConfirm = (key: string, nacked: boolean) => {
    const conn = st.conn;
    if (!st.nacks.note(key, nacked) || !conn) return;
    log.warn(
      { broker: st.connectedTo, routingKey: key },
      'publishes nacked; reopening the connection',
    );
    void conn.close().catch(() => {});
  };

  const publish = async (
    exchange: string,
    routingKey: string,
    body: Buffer,
    props: amqp.Options.Publish,
    waitMs: number,
  ) => {
    let reason = 'unavailable';
    try {
      const ch = await channel(waitMs);
      reason = 'unconfirmed';
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          try {
            ch.publish(exchange, routingKey, body, props, (err) => {
              if (ch === st.pub) noteConfirm(routingKey, err?.message === NACKED);
              if (!err) return resolve();
              reason = err.message === NACKED ? 'nacked' : 'refused';
              reject(
                new TransientError(`publish to ${routingKey} not confirmed (${err.message})`, {
                  cause: err,
                }),
              );
            });
          } catch (e) {
            // The channel closed under us (its connection is going): the caller retries.
            reason = 'closed';
            reject(new TransientError(`publish to ${routingKey} failed`, { cause: e }));
          }
        }),
        waitMs,
        `publish to ${routingKey} not confirmed after ${waitMs} ms`,
      );
    } catch (e) {
      opts.metrics?.publishFailures.inc({ reason });
      throw e;
    }
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
    connectedTo: () => st.connectedTo,
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
      const observe = callObserver(opts.metrics, method);
      const reply = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          observe.timedOut = true;
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
        observe.done('error');
        throw e;
      }
      return reply.then(
        (result) => {
          observe.done('ok');
          return result;
        },
        (e: unknown) => {
          observe.done(observe.timedOut ? 'timeout' : 'error');
          throw e;
        },
      );
    },
    consume(queue, handler) {
      consumers.push({ queue, handler });
      if (st.conn && st.pub) {
        const conn = st.conn;
        const alive = () => st.conn === conn;
        void startConsumer(conn, st.pub, queue, handler, log, alive).catch((e: Error) => {
          log.error({ err: e.message, queue: queue.name }, 'consumer setup failed; reconnecting');
          void conn.close().catch(() => {});
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

async function declareTopology(
  conn: amqp.ChannelModel,
  ch: amqp.ConfirmChannel,
  fanouts: Set<string>,
  log: Logger,
) {
  await ch.assertExchange(EXCHANGE, 'topic', { durable: true });
  await ch.assertExchange(DEAD_LETTER_EXCHANGE, 'fanout', { durable: true });
  for (const spec of [DEAD_LETTERS, apiQueue(REPORTS_TOPIC), apiQueue(PLUGIN_TOPIC)]) {
    const declared = await declareQueue(conn, spec, log);
    for (const b of spec.bindings) await declared.bindQueue(spec.name, b.exchange, b.routingKey);
    await declared.close();
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

/** Observes one call's duration once, with its outcome, when there are metrics. */
function callObserver(metrics: AmqpMetrics | undefined, method: string) {
  const started = performance.now();
  return {
    timedOut: false,
    done(outcome: 'ok' | 'error' | 'timeout') {
      const seconds = (performance.now() - started) / 1000;
      metrics?.rpcCallDuration.observe({ method, outcome }, seconds);
    },
  };
}

function failPending(st: State, err: Error) {
  for (const [id, p] of st.pending) {
    clearTimeout(p.timer);
    p.reject(err);
    st.pending.delete(id);
  }
}

/** `p`, or a TransientError with `message` once `ms` passed. */
function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TransientError(message)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** host:port of an amqp:// URL, for logs (never the credentials). */
function brokerAddress(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5672'}`;
}

function withHeartbeat(url: string, seconds: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.toString();
}
