/**
 * core/config.ts: kumo.conf compiled into a typed object.
 *
 * Invariant under test: compileConfig returns a complete config or throws a ConfigError
 * whose message starts with `[section] key` (or `[section]`), so a typo never silently
 * falls back to a default; a daemon refuses, at start, a config without a key it requires.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AGENT_TYPES } from '../../contracts/agents.ts';
import {
  CONFIG_KEYS,
  ConfigError,
  checkRequired,
  compileConfig,
  loadConfig,
  REQUIRED_KEYS,
  required,
  transportUrl,
} from '../../core/config.ts';
import { tempDir } from '../helpers/env.ts';

const SAMPLE = join(import.meta.dirname, '..', '..', 'etc', 'kumo.conf.sample');
const dir = tempDir('kumo-config-test-');
after(() => dir.cleanup());

/** Asserts compiling `text` fails with a ConfigError whose message starts with `prefix`. */
function refuses(text: string, prefix: string, reason?: RegExp) {
  assert.throws(
    () => compileConfig(text),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
      assert.ok(e.message.startsWith(prefix), `"${e.message}" should start with "${prefix}"`);
      if (reason) assert.match(e.message, reason);
      return true;
    },
  );
}

describe('compileConfig defaults', () => {
  test('an empty file yields every default', () => {
    const c = compileConfig('');
    assert.equal(c.path, '<string>');
    assert.equal(c.DEFAULT.state_path, '/var/lib/kumo');
    assert.equal(c.DEFAULT.debug, false);
    assert.deepEqual(c.DEFAULT.transport_url, ['amqp://guest:guest@127.0.0.1:5672/']);
    assert.equal(c.DEFAULT.rpc_response_timeout, 60);
    assert.equal(c.DEFAULT.agent_down_time, 30);
    assert.equal(c.agent.report_interval, 10);
    assert.deepEqual(c.agent.tunnel_types, ['vxlan']);
    assert.equal(c.api.bind_host, '127.0.0.1');
    assert.equal(c.api.bind_port, 9696);
    assert.deepEqual(c.api.member_tokens, []);
    assert.equal(c.ovs.integration_bridge, 'br-int');
    assert.equal(c.volume.volume_group, 'kumo-volumes');
    assert.equal(c.compute.cpu_allocation_ratio, 4);
    assert.equal(c.api.admin_token, undefined, 'keys without a default stay undefined');
    assert.equal(c.database.connection, undefined);
  });

  test('host defaults to the short OS host name', () => {
    assert.equal(compileConfig('').DEFAULT.host, hostname().split('.')[0] || 'localhost');
    assert.equal(compileConfig('[DEFAULT]\nhost = node-7\n').DEFAULT.host, 'node-7');
  });

  test('keys before any section belong to DEFAULT', () => {
    const c = compileConfig('debug = yes\nagent_down_time = 75\n[api]\nbind_port = 8080\n');
    assert.equal(c.DEFAULT.debug, true);
    assert.equal(c.DEFAULT.agent_down_time, 75);
    assert.equal(c.api.bind_port, 8080);
  });

  test('lists are split on commas and each item is checked', () => {
    assert.deepEqual(compileConfig('[agent]\ntunnel_types = gre, vxlan\n').agent.tunnel_types, [
      'gre',
      'vxlan',
    ]);
    refuses('[agent]\ntunnel_types = gre, geneve\n', '[agent] tunnel_types:', /one of gre, vxlan/);
  });

  test('required() names a missing key', () => {
    const c = compileConfig('');
    assert.throws(
      () => required(c.api.admin_token, 'api', 'admin_token'),
      /^ConfigError: \[api\] admin_token: is required/,
    );
  });
});

describe('[compute] reclaim_instance_interval', () => {
  test('seconds, 0 (off) by default; negative or fractional values are refused', () => {
    assert.equal(compileConfig('').compute.reclaim_instance_interval, 0);
    const c = compileConfig('[compute]\nreclaim_instance_interval = 3600\n');
    assert.equal(c.compute.reclaim_instance_interval, 3600);
    for (const raw of ['-1', '1.5', 'soon'])
      refuses(
        `[compute]\nreclaim_instance_interval = ${raw}\n`,
        '[compute] reclaim_instance_interval:',
        /integer/,
      );
  });
});

describe('booleans', () => {
  test('yes/no/on/off/1/0 are accepted', () => {
    for (const [raw, want] of [
      ['yes', true],
      ['on', true],
      ['1', true],
      ['no', false],
      ['off', false],
      ['0', false],
    ] as const) {
      assert.equal(compileConfig(`[DEFAULT]\ndebug = ${raw}\n`).DEFAULT.debug, want, raw);
    }
  });

  // The ini parser turns `true`/`false` into JS booleans; compileSection must accept them.
  test('true and false are accepted', () => {
    assert.equal(compileConfig('[DEFAULT]\ndebug = true\n').DEFAULT.debug, true);
    assert.equal(compileConfig('[DEFAULT]\ndebug = false\n').DEFAULT.debug, false);
  });

  test('a bad bool names [section] key', () => {
    refuses('[DEFAULT]\ndebug = maybe\n', '[DEFAULT] debug:', /true or false.*"maybe"/);
  });
});

describe('errors name [section] key', () => {
  test('unknown key and unknown section', () => {
    refuses('[DEFAULT]\ndebugg = true\n', '[DEFAULT] debugg: unknown key');
    refuses('[api]\nbind_prot = 1\n', '[api] bind_prot: unknown key');
    refuses('[apii]\nbind_port = 1\n', '[apii]: unknown section');
  });

  test('bad integers and numbers', () => {
    refuses('[api]\nbind_port = 70000\n', '[api] bind_port:', /integer between 1 and 65535/);
    refuses('[api]\nbind_port = 80.5\n', '[api] bind_port:', /integer/);
    refuses('[api]\nbind_port = abc\n', '[api] bind_port:', /"abc"/);
    refuses(
      '[DEFAULT]\nagent_down_time = 0\n',
      '[DEFAULT] agent_down_time:',
      /number between 1 and 86400/,
    );
    refuses('[DEFAULT]\nrpc_response_timeout =\n', '[DEFAULT] rpc_response_timeout:', /number/);
  });

  test('bad transport_url', () => {
    refuses('[DEFAULT]\ntransport_url = not a url\n', '[DEFAULT] transport_url:', /rabbit:\/\//);
    refuses(
      '[DEFAULT]\ntransport_url = http://u:p@h:5672/\n',
      '[DEFAULT] transport_url:',
      /scheme/,
    );
  });

  test('bad database connection', () => {
    refuses(
      '[database]\nconnection = mysql://u:p@h/db\n',
      '[database] connection:',
      /sqlite|postgresql/,
    );
    refuses(
      '[database]\nconnection = sqlite:///relative.db\n',
      '[database] connection:',
      /absolute path/,
    );
  });

  test('control characters are refused', () => {
    refuses('[api]\nadmin_token = abcd\tefgh\n', '[api] admin_token:', /URL-safe characters/);
    refuses('[DEFAULT]\nstate_path = /var/\u0001lib\n', '[DEFAULT] state_path:', /absolute path/);
    refuses('[DEFAULT]\nhost = no\u0007de\n', '[DEFAULT] host:', /valid host name/);
  });

  test('other shaped values', () => {
    refuses('[api]\nbind_host = 256.1.1.1\n', '[api] bind_host:', /IPv4/);
    refuses('[api]\nadmin_token = short\n', '[api] admin_token:', /token/);
    refuses(
      '[ovs]\nintegration_bridge = this-name-is-too-long\n',
      '[ovs] integration_bridge:',
      /bridge name/,
    );
    refuses('[compute]\nvirt_type = xen\n', '[compute] virt_type:', /kvm, qemu/);
    refuses('[DEFAULT]\nhost = bad host\n', '[DEFAULT] host:', /valid host name/);
  });
});

describe('URLs', () => {
  test('rabbit:// becomes amqp:// with a default port and vhost', () => {
    const url = (raw: string) =>
      compileConfig(`[DEFAULT]\ntransport_url = ${raw}\n`).DEFAULT.transport_url;
    assert.deepEqual(url('rabbit://kumo:secret@10.0.0.5:5672/kumo'), [
      'amqp://kumo:secret@10.0.0.5:5672/kumo',
    ]);
    assert.deepEqual(url('rabbit://kumo:secret@mq.example.org/'), [
      'amqp://kumo:secret@mq.example.org:5672/',
    ]);
    assert.deepEqual(url('amqp://u:p@127.0.0.1:5673/vh'), ['amqp://u:p@127.0.0.1:5673/vh']);
    assert.deepEqual(url('rabbit://127.0.0.1'), ['amqp://127.0.0.1:5672/']);
  });

  test('several brokers, as oslo.messaging: in order, credentials inherited from the first', () => {
    const url = (raw: string) =>
      compileConfig(`[DEFAULT]\ntransport_url = ${raw}\n`).DEFAULT.transport_url;
    assert.deepEqual(url('rabbit://a:pw@10.0.0.1:5672,b:pw2@10.0.0.2,10.0.0.3:5673/kumo'), [
      'amqp://a:pw@10.0.0.1:5672/kumo',
      'amqp://b:pw2@10.0.0.2:5672/kumo',
      'amqp://a:pw@10.0.0.3:5673/kumo',
    ]);
    assert.deepEqual(url('rabbit://u:p%40ss@[::1]:5672/'), ['amqp://u:p%40ss@[::1]:5672/']);
    for (const bad of [
      'rabbit://u:p@h1,/v',
      'rabbit://u:p@h1:99999/',
      'rabbit://u:p@h;rm/',
      'rabbit://u:p@h1,u:p@h 2/',
    ])
      assert.throws(() => transportUrl(bad), /bad (host|port)/, bad);
    refuses('[DEFAULT]\ntransport_url = rabbit://u:p@h1,/v\n', '[DEFAULT] transport_url:', /host/);
  });

  test('[api] lease_duration and [identity] key_rotation_interval', () => {
    const c = compileConfig('[api]\nlease_duration = 4\n[identity]\nkey_rotation_interval = 24\n');
    assert.equal(c.api.lease_duration, 4);
    assert.equal(c.identity.key_rotation_interval, 24);
    assert.equal(compileConfig('').api.lease_duration, 15);
    assert.equal(compileConfig('').identity.key_rotation_interval, 0);
    refuses('[api]\nlease_duration = 0\n', '[api] lease_duration:', /./);
  });

  test('sqlite:////abs and postgresql:// connections', () => {
    const conn = (raw: string) =>
      compileConfig(`[database]\nconnection = ${raw}\n`).database.connection;
    assert.deepEqual(conn('sqlite:////var/lib/kumo/kumo.db'), {
      engine: 'sqlite',
      path: '/var/lib/kumo/kumo.db',
    });
    assert.deepEqual(conn('sqlite:///:memory:'), { engine: 'sqlite', path: ':memory:' });
    const pgUrl = 'postgresql://kumo:pw@127.0.0.1:5432/kumo';
    assert.deepEqual(conn(pgUrl), { engine: 'postgres', url: pgUrl });
    assert.deepEqual(conn('postgres://kumo:pw@127.0.0.1/kumo'), {
      engine: 'postgres',
      url: 'postgresql://kumo:pw@127.0.0.1/kumo',
    });
    assert.deepEqual(conn('postgresql+psycopg2://kumo:pw@db/kumo'), {
      engine: 'postgres',
      url: 'postgresql://kumo:pw@db/kumo',
    });
  });
});

describe('loadConfig', () => {
  test('reads a file and keeps its path', () => {
    const path = join(dir.path, 'kumo.conf');
    writeFileSync(path, '[DEFAULT]\nhost = node-2\n[api]\nbind_port = 9797\n');
    const c = loadConfig(path);
    assert.equal(c.path, path);
    assert.equal(c.DEFAULT.host, 'node-2');
    assert.equal(c.api.bind_port, 9797);
  });

  test('a missing file names the path', () => {
    const path = join(dir.path, 'absent.conf');
    assert.throws(
      () => loadConfig(path),
      (e: unknown) =>
        e instanceof ConfigError && e.message.includes(path) && /ENOENT/.test(e.message),
    );
  });
});

test('etc/kumo.conf.sample is a valid config and documents every key', () => {
  const text = readFileSync(SAMPLE, 'utf8');
  assert.doesNotThrow(() => compileConfig(text));
  const documented = new Map<string, Set<string>>();
  let section = 'DEFAULT';
  for (const line of text.split('\n')) {
    const header = /^\[(\w+)\]/.exec(line);
    if (header) section = header[1] as string;
    const key = /^#?([a-z_]+) =/.exec(line);
    if (key) documented.set(section, (documented.get(section) ?? new Set()).add(key[1] as string));
  }
  for (const [name, keys] of Object.entries(CONFIG_KEYS))
    for (const key of keys)
      assert.ok(documented.get(name)?.has(key), `[${name}] ${key} is missing from the sample`);
});

const DAEMONS = ['kumo-api', ...AGENT_TYPES.map((t) => t.binary)];

describe('keys a daemon requires, checked at start', () => {
  const TOKEN = 'service-token-1';

  test('every daemon has a list, and an unknown daemon is a programming error', () => {
    assert.deepEqual(Object.keys(REQUIRED_KEYS).sort(), [...DAEMONS].sort());
    assert.throws(() => checkRequired(compileConfig(''), 'kumo-nothing'), /no list/);
  });

  test('a missing required key names [section] key; present, it passes', () => {
    const bare = compileConfig('');
    assert.throws(
      () => checkRequired(bare, 'kumo-compute-agent'),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message === '[api] service_token: is required (to download images from kumo-api)',
    );
    assert.throws(() => checkRequired(bare, 'kumo-api'), /^ConfigError: \[api\] admin_token: is/);
    checkRequired(compileConfig(`[api]\nservice_token = ${TOKEN}\n`), 'kumo-compute-agent');
    checkRequired(compileConfig(`[api]\nadmin_token = ${TOKEN}\n`), 'kumo-api');
    for (const daemon of ['kumo-ovs-agent', 'kumo-dhcp-agent', 'kumo-l3-agent'])
      checkRequired(bare, daemon);
  });

  test('required keys have no default and the sample says which daemon needs them', () => {
    const bare = compileConfig('') as unknown as Record<string, Record<string, unknown>>;
    const lines = readFileSync(SAMPLE, 'utf8').split('\n');
    for (const [daemon, keys] of Object.entries(REQUIRED_KEYS)) {
      for (const { section, key } of keys) {
        assert.equal(bare[section]?.[key], undefined, `[${section}] ${key} has a default`);
        const at = lines.indexOf(`#${key} =`);
        const comment = lines.slice(0, at).reverse();
        const block = comment.slice(
          0,
          comment.findIndex((l) => !l.startsWith('#')),
        );
        assert.match(block.reverse().join(' '), new RegExp(`^# Required by ${daemon}\\b`), key);
      }
    }
  });

  test('kumo-compute-agent without [api] service_token exits 78 before connecting', () => {
    const conf = join(dir.path, 'no-token.conf');
    // An unreachable broker: were the check skipped the agent would try it, not exit 78.
    writeFileSync(conf, '[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n');
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'kumo-compute-agent.ts');
    const r = spawnSync(process.execPath, [bin, '--config-file', conf], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NOTIFY_SOCKET: '' },
    });
    assert.equal(r.status, 78, `exit ${r.status} ${r.signal}: ${r.stderr}`);
    assert.equal(
      r.stderr,
      'kumo-compute-agent: [api] service_token: is required (to download images from kumo-api)\n',
    );
  });
});
