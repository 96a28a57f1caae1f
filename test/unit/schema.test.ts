/**
 * contracts/schema.ts (the runtime validator) and contracts/messages.ts (the AMQP envelope).
 *
 * Invariant under test: a bad value is refused with a ValidationError whose `field` is the
 * path of the offending attribute, so an operator can tell which field to fix.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentUpdate } from '../../contracts/agents.ts';
import { encodeMessage, parseMessage } from '../../contracts/messages.ts';
import {
  arr,
  bool,
  hostname,
  int,
  json,
  nullable,
  obj,
  oneOf,
  optional,
  str,
  uuid,
  ValidationError,
} from '../../contracts/schema.ts';

/** Asserts `fn` throws a ValidationError on `field` whose reason matches `reason`. */
function refuses(fn: () => unknown, field: string, reason: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ValidationError, `expected ValidationError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.match(e.reason, reason);
    if (field) assert.ok(e.message.startsWith(`${field}: `), e.message);
    return true;
  });
}

describe('str', () => {
  test('accepts plain text and enforces length bounds', () => {
    assert.equal(str().parse('hello world'), 'hello world');
    refuses(() => str({ min: 2 }).parse('a', 'x'), 'x', /at least 2/);
    refuses(() => str({ max: 3 }).parse('abcd', 'x'), 'x', /at most 3/);
    refuses(() => str().parse(42, 'x'), 'x', /must be a string, got number/);
  });

  test('rejects newlines and control characters, naming the nested field path', () => {
    for (const bad of ['line1\nline2', 'a\rb', 'tab\there', 'nul\u0000', 'del\u007f']) {
      refuses(
        () => AgentUpdate.parse({ agent: { description: bad } }),
        'agent.description',
        /control characters/,
      );
    }
    const ok = AgentUpdate.parse({ agent: { description: 'ünïcode is fine' } });
    assert.equal(ok.agent.description, 'ünïcode is fine');
  });

  test('pattern failures use the pattern name', () => {
    refuses(
      () => str({ pattern: /^a+$/, patternName: 'only a' }).parse('b', 'p'),
      'p',
      /must be only a/,
    );
  });
});

describe('obj', () => {
  const S = obj({ name: str(), size: optional(int()), note: nullable(str()) });

  test('refuses unknown keys and names them', () => {
    refuses(
      () => S.parse({ name: 'x', note: null, colour: 'red' }, 'thing'),
      'thing.colour',
      /not a recognised/,
    );
    refuses(() => AgentUpdate.parse({ agent: { host: 'h' } }), 'agent.host', /not a recognised/);
  });

  test('required, optional and nullable', () => {
    assert.deepEqual(S.parse({ name: 'x', note: null }), { name: 'x', note: null });
    assert.deepEqual(S.parse({ name: 'x', size: 3, note: 'n' }), { name: 'x', size: 3, note: 'n' });
    assert.ok(!('size' in S.parse({ name: 'x', note: null })), 'absent optional key stays absent');
    // a missing required key is named (the reason comes from the key's own schema)
    refuses(() => S.parse({ note: null }), 'name', /is required/);
    refuses(() => S.parse({ name: 'x' }), 'note', /is required/);
    refuses(
      () => S.parse({ name: 'x', note: null, size: null }),
      'size',
      /must be an integer, got null/,
    );
    refuses(() => S.parse([], 'root'), 'root', /must be an object, got an array/);
  });

  test('nested arrays name the index', () => {
    const L = obj({ items: arr(obj({ n: int() }), { max: 2 }) });
    refuses(() => L.parse({ items: [{ n: 1 }, { n: 'two' }] }), 'items[1].n', /integer/);
    refuses(() => L.parse({ items: [{ n: 1 }, { n: 2 }, { n: 3 }] }), 'items', /at most 2 items/);
  });
});

describe('scalars', () => {
  test('int bounds and integrality', () => {
    const I = int({ min: 1, max: 10 });
    assert.equal(I.parse(1), 1);
    assert.equal(I.parse(10), 10);
    refuses(() => I.parse(0, 'n'), 'n', /between 1 and 10/);
    refuses(() => I.parse(11, 'n'), 'n', /between 1 and 10/);
    refuses(() => I.parse(1.5, 'n'), 'n', /must be an integer/);
    refuses(() => I.parse('5', 'n'), 'n', /must be an integer, got "5"/);
    refuses(() => I.parse(Number.NaN, 'n'), 'n', /must be an integer/);
  });

  test('bool and oneOf', () => {
    assert.equal(bool().parse(false), false);
    refuses(() => bool().parse('true', 'b'), 'b', /true or false/);
    assert.equal(oneOf(['a', 'b'] as const).parse('b'), 'b');
    refuses(() => oneOf(['a', 'b'] as const).parse('c', 'e'), 'e', /one of "a", "b"/);
  });

  test('hostname pattern', () => {
    for (const ok of ['node-1', 'a', 'compute01.example.org', 'x_y'])
      assert.equal(hostname().parse(ok), ok);
    for (const bad of [
      '',
      '-node',
      'node-',
      'a..b',
      'has space',
      'semi;colon',
      `${'a'.repeat(64)}`,
    ]) {
      assert.throws(
        () => hostname().parse(bad, 'host'),
        ValidationError,
        `should refuse ${JSON.stringify(bad)}`,
      );
    }
    refuses(() => hostname().parse('bad host', 'host'), 'host', /a valid host name/);
  });

  test('uuid pattern accepts lowercase only', () => {
    const id = '5a3b4c6d-0000-4000-8000-000000000001';
    assert.equal(uuid().parse(id), id);
    refuses(() => uuid().parse(id.toUpperCase(), 'id'), 'id', /lowercase UUID/);
    refuses(() => uuid().parse('5a3b4c6d00004000800000000000000001', 'id'), 'id', /lowercase UUID/);
  });
});

describe('json', () => {
  test('accepts nested data within depth and size', () => {
    const v = { a: 1, b: [true, null, 'x'], c: { d: { e: 2.5 } } };
    assert.deepEqual(json().parse(v), v);
  });

  test('depth limit names the too-deep path', () => {
    const J = json({ maxDepth: 3 });
    assert.deepEqual(J.parse({ a: { b: 1 } }), { a: { b: 1 } });
    refuses(() => J.parse({ a: { b: { c: 1 } } }, 'cfg'), 'cfg.a.b.c', /deeper than 3/);
  });

  test('size limit, non-finite numbers, non-JSON values and control-character keys', () => {
    refuses(
      () => json({ maxBytes: 20 }).parse({ s: 'x'.repeat(30) }, 'cfg'),
      'cfg',
      /at most 20 bytes/,
    );
    refuses(() => json().parse({ n: Number.POSITIVE_INFINITY }, 'cfg'), 'cfg.n', /finite/);
    refuses(() => json().parse({ f: () => 1 }, 'cfg'), 'cfg.f', /not JSON data \(function\)/);
    refuses(() => json().parse({ 'bad\nkey': 1 }, 'cfg'), 'cfg', /keys must not contain control/);
    refuses(() => json().parse([1], 'cfg'), 'cfg', /must be an object/);
  });
});

const STATE = {
  agent_type: 'DHCP agent',
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host: 'node-1',
  configurations: { networks: 2 },
  start_flag: true,
};

describe('parseMessage', () => {
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));

  test('a valid report_state round-trips through encodeMessage', () => {
    const args = { agent_state: STATE, time: '2024-01-01T00:00:00Z' };
    const m = parseMessage(encodeMessage('report_state', args));
    assert.equal(m.method, 'report_state');
    assert.deepEqual(m.args, args);
  });

  test('a valid hint and resync', () => {
    assert.deepEqual(
      parseMessage(body({ kumo: 1, method: 'hint', args: { resource: 'port', id: 'p1' } })),
      {
        method: 'hint',
        args: { resource: 'port', id: 'p1' },
      },
    );
    assert.equal(
      parseMessage(body({ kumo: 1, method: 'resync', args: { reason: 'revived' } })).method,
      'resync',
    );
  });

  test('invalid JSON and non-object bodies', () => {
    refuses(() => parseMessage(Buffer.from('{not json')), '', /not valid JSON/);
    refuses(() => parseMessage(Buffer.from('[1,2]')), '', /must be a JSON object/);
    refuses(() => parseMessage(Buffer.from('"hi"')), '', /must be a JSON object/);
  });

  test('wrong envelope version and unknown method', () => {
    refuses(
      () => parseMessage(body({ kumo: 2, method: 'hint', args: {} })),
      'kumo',
      /between 1 and 1/,
    );
    refuses(() => parseMessage(body({ method: 'hint', args: {} })), 'kumo', /is required/);
    refuses(() => parseMessage(body({ kumo: 1, method: 'reboot', args: {} })), 'method', /one of/);
    refuses(
      () => parseMessage(body({ kumo: 1, method: 'hint', args: {}, extra: 1 })),
      'extra',
      /not a recognised/,
    );
  });

  test('bad args name the nested field', () => {
    const bad = {
      kumo: 1,
      method: 'report_state',
      args: { agent_state: { ...STATE, host: 'bad host;' }, time: 't' },
    };
    refuses(() => parseMessage(body(bad)), 'args.agent_state.host', /valid host name/);
    const missing = { kumo: 1, method: 'report_state', args: { agent_state: STATE } };
    refuses(() => parseMessage(body(missing)), 'args.time', /is required/);
    const hint = { kumo: 1, method: 'hint', args: { resource: 'port', id: 'a\nb' } };
    refuses(() => parseMessage(body(hint)), 'args.id', /control characters/);
  });
});
