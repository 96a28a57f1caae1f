/**
 * A Broker for unit tests of core/agent.ts's own logic (the real broker is tested in
 * test/integration/amqp*.test.ts): it keeps the handlers the agent registers, records the
 * report_state casts it accepts and the timeout of every try, and refuses the first
 * `refusals` of them with a TransientError, as a broker that nacks does.
 */
import { TransientError } from '../../contracts/errors.ts';
import type { Message } from '../../contracts/messages.ts';
import type { Broker, Handler } from '../../core/amqp.ts';

export function fakeBroker(refusals = 0) {
  const handlers: Handler[] = [];
  const reports: unknown[] = [];
  const tries: number[] = [];
  let left = refusals;
  const broker: Broker = {
    start: async () => {},
    close: async () => {},
    isConnected: () => true,
    connectedTo: () => 'fake:5672',
    cast: async (_key, method, args, opts) => {
      if (method !== 'report_state') return;
      tries.push(opts?.timeoutMs ?? -1);
      if (left-- > 0) throw new TransientError('publish to q-reports-plugin not confirmed');
      reports.push(args);
    },
    fanout: async () => {},
    call: async () => undefined,
    consume: (_queue, handler) => handlers.push(handler),
    declareFanout: () => {},
    onConnect: () => {},
  };
  /** Delivers `message` to the first consumer the agent registered (its host queue). */
  const deliver = (message: Message) =>
    handlers[0]?.(message, { queue: 'dhcp_agent.h1', redelivered: false });
  return { broker, reports, tries, deliver, accept: () => (left = 0) };
}
