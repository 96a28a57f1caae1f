/**
 * core/amqp.ts against the real RabbitMQ broker, in a vhost of its own.
 *
 * Invariants under test: casts and calls are delivered with validated args; a malformed
 * message is dead-lettered with its reason and the consumer keeps serving; a dropped
 * connection is re-established and consumers come back; a cast never waits beyond its
 * timeout when the broker is unreachable; a classic queue an older Kumo declared is replaced by
 * the quorum declaration; with several broker URLs a dead first one costs no backoff; a nack
 * is a TransientError, and only a run of nothing but nacks reopens the connection.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { TransientError } from '../../contracts/errors.ts';
import { DEAD_LETTER_QUEUE, EXCHANGE, type Message } from '../../contracts/messages.ts';
import {
  type Broker,
  type BrokerOptions,
  createBroker,
  type QueueSpec,
  hostQueueSpec as quorumHostQueue,
} from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, type Vhost, waitFor } from '../helpers/env.ts';

let vhost: Vhost;
const brokers: Broker[] = [];

before(() => {
  vhost = rabbitVhost();
});
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
});
after(() => vhost.cleanup());

function broker(over: Partial<BrokerOptions> = {}): Broker {
  const b = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 5000, ...over });
  brokers.push(b);
  return b;
}

const uniq = (prefix: string) => `${prefix}.${randomBytes(3).toString('hex')}`;

function hostQueueSpec(name: string): QueueSpec {
  return { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] };
}

/** A consumer that records what it receives. */
function recorder(handle: (m: Message) => unknown = () => null) {
  const got: Message[] = [];
  const handler = async (m: Message) => {
    got.push(m);
    return handle(m);
  };
  return { got, handler };
}

const hint = (id: string) => ({ resource: 'port' as const, id });

describe('cast and call', () => {
  test('a cast to a consumed queue is delivered with parsed args', async () => {
    const b = broker();
    const q = uniq('cast_agent');
    const r = recorder();
    b.consume(hostQueueSpec(q), r.handler);
    await b.start();
    assert.equal(b.isConnected(), true);
    await b.cast(q, 'hint', { resource: 'network', id: 'net-1', revision: 7 });
    await waitFor('the cast to arrive', () => r.got.length === 1);
    assert.deepEqual(r.got[0], {
      method: 'hint',
      args: { resource: 'network', id: 'net-1', revision: 7 },
    });
  });

  test('a call gets the reply; a handler error rejects with its message', async () => {
    const server = broker();
    const client = broker();
    const q = uniq('rpc_agent');
    server.consume(
      hostQueueSpec(q),
      recorder((m) => {
        if (m.method === 'hint' && m.args.id === 'bad')
          throw new RangeError('port bad is not mine');
        return { echoed: m.method === 'hint' ? m.args.id : null };
      }).handler,
    );
    await server.start();
    await client.start();
    assert.deepEqual(await client.call(q, 'hint', hint('p-9')), { echoed: 'p-9' });
    await assert.rejects(client.call(q, 'hint', hint('bad')), (e: Error) => {
      assert.equal(e.message, 'port bad is not mine');
      assert.equal(e.name, 'RangeError');
      return true;
    });
  });

  test('a call to a queue nobody consumes times out with a TransientError', async () => {
    const b = broker();
    await b.start();
    await assert.rejects(
      b.call(uniq('nobody'), 'hint', hint('x'), { timeoutMs: 500 }),
      (e: Error) => {
        assert.ok(e instanceof TransientError, String(e));
        assert.match(e.message, /timed out after 500 ms/);
        return true;
      },
    );
  });

  test('a fanout reaches every bound consumer', async () => {
    const exchange = uniq('fan');
    const a = recorder();
    const c = recorder();
    const one = broker();
    const two = broker();
    for (const [b, r] of [
      [one, a],
      [two, c],
    ] as const) {
      b.declareFanout(exchange);
      b.consume(
        {
          name: uniq('fanq'),
          durable: false,
          exclusive: true,
          bindings: [{ exchange, routingKey: '' }],
        },
        r.handler,
      );
      await b.start();
    }
    await one.fanout(exchange, 'resync', { reason: 'operator' });
    await waitFor(
      'both consumers to get the fanout',
      () => a.got.length === 1 && c.got.length === 1,
    );
    assert.deepEqual(a.got[0], { method: 'resync', args: { reason: 'operator' } });
    assert.deepEqual(c.got[0], a.got[0]);
  });
});

describe('dead-lettering', () => {
  let conn: amqp.ChannelModel;
  let ch: amqp.Channel;
  before(async () => {
    conn = await amqp.connect(vhost.url);
    ch = await conn.createChannel();
  });
  after(async () => conn.close().catch(() => {}));

  /** Waits for a dead letter that came from `queue`; returns its reason header. */
  const seen: amqp.GetMessage[] = [];
  async function deadLetterFrom(queue: string, count: number): Promise<string[]> {
    const mine = () => seen.filter((m) => m.properties.headers?.['x-kumo-queue'] === queue);
    await waitFor(`${count} dead letters from ${queue}`, async () => {
      for (
        let m = await ch.get(DEAD_LETTER_QUEUE, { noAck: true });
        m;
        m = await ch.get(DEAD_LETTER_QUEUE, { noAck: true })
      ) {
        seen.push(m);
      }
      return mine().length >= count;
    });
    return mine().map((m) => String(m.properties.headers?.['x-kumo-reason']));
  }

  test('malformed messages go to kumo.dead-letter with the reason; the consumer goes on', async () => {
    const b = broker();
    const q = uniq('dl_agent');
    const r = recorder();
    b.consume(hostQueueSpec(q), r.handler);
    await b.start();
    ch.publish('', q, Buffer.from('this is {not json'));
    ch.publish(
      '',
      q,
      Buffer.from(
        JSON.stringify({ kumo: 1, method: 'hint', args: { resource: 'port', id: 'a b' } }),
      ),
    );
    const reasons = await deadLetterFrom(q, 2);
    assert.match(reasons[0] ?? '', /not valid JSON/);
    assert.match(reasons[1] ?? '', /^args\.id: .*resource id/);
    const bodies = seen
      .filter((m) => m.properties.headers?.['x-kumo-queue'] === q)
      .map((m) => m.content.toString());
    assert.equal(bodies[0], 'this is {not json', 'the body is kept verbatim');
    assert.equal(r.got.length, 0, 'the handler never saw them');

    await b.cast(q, 'hint', hint('after-bad'));
    await waitFor('the valid cast after the bad ones', () => r.got.length === 1);
    assert.deepEqual(r.got[0], { method: 'hint', args: hint('after-bad') });
  });

  test('a cast whose handler fails permanently is dead-lettered with the error', async () => {
    const b = broker();
    const q = uniq('dl_handler');
    b.consume(
      hostQueueSpec(q),
      recorder(() => {
        throw new Error('disk on fire');
      }).handler,
    );
    await b.start();
    await b.cast(q, 'hint', hint('p1'));
    const [reason] = await deadLetterFrom(q, 1);
    assert.equal(reason, 'handler failed: disk on fire');
  });
});

describe('connection loss', () => {
  test('after the broker drops the connection, the consumer comes back', async () => {
    const b = broker({ backoff: { initialMs: 50, maxMs: 200 } });
    const q = uniq('reconnect_agent');
    const r = recorder();
    const connects: boolean[] = [];
    b.onConnect(({ reconnected }) => connects.push(reconnected));
    b.consume(hostQueueSpec(q), r.handler);
    await b.start();
    assert.deepEqual(connects, [false]);

    await waitFor('the broker to list our connection', () =>
      execFileSync('rabbitmqctl', ['-q', 'list_connections', '-p', vhost.name, 'name'], {
        encoding: 'utf8',
      }).trim(),
    );
    execFileSync(
      'rabbitmqctl',
      ['-q', 'close_all_connections', '--vhost', vhost.name, 'kumo test: forced close'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    await waitFor('onConnect with reconnected: true', () => connects.includes(true));
    assert.deepEqual(connects, [false, true]);
    assert.equal(b.isConnected(), true);

    await b.cast(q, 'hint', hint('after-reconnect'));
    await waitFor('a cast after the reconnect', () => r.got.length === 1);
    assert.deepEqual(r.got[0], { method: 'hint', args: hint('after-reconnect') });
  });

  test('a cast or fanout while the broker is unreachable rejects with a TransientError', async () => {
    const port = await closedPort();
    const b = broker({
      url: `amqp://kumo_test:x@127.0.0.1:${port}/${vhost.name}`,
      timeoutMs: 500,
      backoff: { initialMs: 20, maxMs: 50 },
    });
    void b.start();
    assert.equal(b.isConnected(), false);
    await assert.rejects(b.cast('anywhere', 'hint', hint('x')), (e: Error) => {
      assert.ok(e instanceof TransientError, String(e));
      assert.match(e.message, /unavailable after 500 ms/);
      return true;
    });
    await assert.rejects(
      b.cast('anywhere', 'hint', hint('y'), { timeoutMs: 100 }),
      /unavailable after 100 ms/,
    );
    await assert.rejects(
      b.fanout('kumo.test_fanout', 'hint', hint('z'), { timeoutMs: 100 }),
      /unavailable after 100 ms/,
    );
  });
});

describe('nacks', () => {
  test('a burst of nacks rejects each cast; 2 s of nothing but nacks for a key reopens the connection', async () => {
    const b = broker({ backoff: { initialMs: 50, maxMs: 200 } });
    const connects: boolean[] = [];
    b.onConnect(({ reconnected }) => connects.push(reconnected));
    await b.start();
    // A queue that refuses every publish: the broker nacks each one.
    const q = uniq('refusing_agent');
    const conn = await amqp.connect(vhost.url);
    const ch = await conn.createChannel();
    await ch.assertQueue(q, {
      durable: false,
      arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' },
    });
    await ch.bindQueue(q, EXCHANGE, q);
    await conn.close();

    const started = Date.now();
    let nacks = 0;
    while (Date.now() - started < 1500) {
      await assert.rejects(b.cast(q, 'hint', hint(`n-${nacks}`)), (e: Error) => {
        assert.ok(e instanceof TransientError, String(e));
        assert.match(e.message, /not confirmed \(message nacked\)/);
        return true;
      });
      nacks++;
    }
    assert.deepEqual(connects, [false], `${nacks} nacks within 1.5 s reopened nothing`);
    await waitFor('nacks past 2 s to reopen the connection', async () => {
      await b.cast(q, 'hint', hint('more')).catch(() => {});
      return connects.includes(true);
    });
    assert.deepEqual(connects, [false, true]);
  });
});

describe('queue kinds and several brokers', () => {
  /** `type` of each queue of the test vhost, from the broker itself. */
  const queueTypes = (): Record<string, string> => {
    const out = execFileSync(
      'rabbitmqctl',
      ['-q', 'list_queues', '-p', vhost.name, 'name', 'type', '--formatter', 'json'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const rows = JSON.parse(out) as { name: string; type: string }[];
    return Object.fromEntries(rows.map((r) => [r.name, r.type]));
  };

  test('a classic queue an older Kumo declared is replaced by the quorum declaration', async () => {
    const q = uniq('ovs_agent.old-host');
    const conn = await amqp.connect(vhost.url);
    const ch = await conn.createChannel();
    await ch.assertQueue(q, { durable: true });
    ch.sendToQueue(q, Buffer.from('an old hint'));
    await conn.close();
    assert.equal(queueTypes()[q], 'classic');

    const b = broker();
    const r = recorder();
    b.consume(quorumHostQueue(q), r.handler);
    await b.start();
    assert.equal(queueTypes()[q], 'quorum');
    await b.cast(q, 'hint', hint('after-upgrade'));
    await waitFor('a cast to the quorum queue', () => r.got.length === 1);
    assert.deepEqual(r.got, [{ method: 'hint', args: hint('after-upgrade') }]);
  });

  test('a broker list whose first URL is dead connects to the second without a backoff', async () => {
    const dead = `amqp://kumo_test:x@127.0.0.1:${await closedPort()}/${vhost.name}`;
    // A backoff round would take a minute: connecting sooner proves there was none.
    const b = broker({ url: [dead, vhost.url], backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const q = uniq('second_broker');
    const r = recorder();
    b.consume(hostQueueSpec(q), r.handler);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('still not connected after 20 s'), 20_000);
    });
    const started = b.start().then(() => 'connected');
    assert.equal(await Promise.race([started, waited]), 'connected');
    clearTimeout(timer);
    assert.equal(b.connectedTo(), '127.0.0.1:5672');
    await b.cast(q, 'hint', hint('via-second'));
    await waitFor('a cast through the second broker', () => r.got.length === 1);
  });
});

/** A loopback port with nothing listening on it. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}
