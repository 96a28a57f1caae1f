/**
 * The LBaaS agent's pure parts: desiredPool (LbPool → namespace, VIP port, route, haproxy
 * config) and planPool (desired + observed → steps), with fixtures. Proves what is served
 * and what not (null pool, admin-down pool or VIP, no VIP), how Neutron's fields become
 * haproxy's vocabulary, that a bad member is left out and listed, and the plans: a new pool
 * in order, a pool in order plans nothing, a config change is a checked hitless reload over
 * the stats socket, a haproxy in a stale namespace is replaced, teardown only of what is ours.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkStatePath,
  type DesiredPool,
  desiredPool,
  maxconnOf,
  maxSocketPath,
  stateDirOf,
  statsSocketOf,
} from '../../agents/lbaas/desired.ts';
import type { ObservedPool } from '../../agents/lbaas/observe.ts';
import { type PoolStep, planPool } from '../../agents/lbaas/plan.ts';
import { configDigest } from '../../agents/lib/haproxy-instance.ts';
import { ValidationError } from '../../contracts/schema.ts';
import type { CommandSpec } from '../../core/exec.ts';
import type { LinkInfo } from '../../host/ip/link.ts';
import {
  emptyObserved,
  M1,
  M2,
  member,
  monitorOf,
  POOL,
  poolOf,
  settingsOf,
  VIP,
} from '../helpers/lbaas-fixtures.ts';

const S = settingsOf('/var/lib/kumo/lbaas');
const DIR = `/var/lib/kumo/lbaas/${POOL}`;
const NS = `klt-qlbaas-${POOL}`;
const ids = { netns: NS, stateDir: DIR };
const served = (over = {}) => desiredPool(poolOf(over), S) as DesiredPool;
/** The command a step runs (a command, or a daemon's start). */
function specOf(step: PoolStep | undefined): CommandSpec {
  if (step?.kind === 'command') return step.spec;
  if (step?.kind === 'daemon' && step.action === 'start') return step.spec;
  throw new Error(`no command in ${JSON.stringify(step)}`);
}
const lines = (d: DesiredPool) => d.haproxy.config.split('\n').map((l) => l.trim());

/** The host once the pool was served with `d` (haproxy running with pid 4242). */
function inOrder(d: DesiredPool): ObservedPool {
  const link: LinkInfo = {
    name: d.port.device,
    mac: d.port.mac,
    mtu: d.port.mtu,
    up: true,
    addrs: [
      { cidr: '10.80.0.100/24', address: '10.80.0.100', prefix: 24, version: 4, scope: 'global' },
    ],
  } as LinkInfo;
  return {
    stateDirExists: true,
    stateDirMode: 0o750,
    owned: true,
    netnsExists: true,
    links: [link],
    ovsPorts: [
      {
        uuid: '00000000-0000-4000-8000-000000000001',
        name: d.port.device,
        bridge: 'br-int',
        ifaceId: d.port.portId,
        attachedMac: d.port.mac,
        vmUuid: null,
      },
    ],
    routes: d.route ? [d.route] : [],
    haproxy: {
      dir: DIR,
      dirExists: true,
      config: d.haproxy.config,
      loaded: configDigest(d.haproxy.config),
      pid: 4242,
      inNetns: true,
      socketServed: true,
    },
    device: d.port.device,
  };
}

describe('desiredPool', () => {
  test('nothing on the host: pool null, pool admin-down, no VIP, VIP admin-down', () => {
    assert.equal(desiredPool(null, S), null);
    assert.equal(desiredPool(poolOf({ admin_state_up: false }), S), null);
    assert.equal(desiredPool(poolOf({ vip: null }), S), null);
    const p = poolOf();
    (p.vip as NonNullable<typeof p.vip>).admin_state_up = false;
    assert.equal(desiredPool(p, S), null);
  });

  test('the seed pool: namespace, tap, address, default route, frontend and backend', () => {
    const d = served();
    assert.equal(d.netns, NS);
    assert.equal(d.stateDir, DIR);
    assert.equal(d.port.device, 'tap2b3c4d5e-6f');
    assert.deepEqual(d.port.addresses, ['10.80.0.100/24']);
    assert.deepEqual(d.route, { destination: '0.0.0.0/0', via: '10.80.0.1' });
    assert.equal(d.haproxy.statsSocket, `${DIR}/haproxy.sock`);
    const l = lines(d);
    for (const want of [
      `stats socket ${DIR}/haproxy.sock mode 600 level admin expose-fd listeners`,
      'user nobody',
      'group nogroup',
      'hard-stop-after 60s',
      `frontend ${VIP}`,
      'bind 10.80.0.100:80',
      'option forwardfor',
      `default_backend ${POOL}`,
      `backend ${POOL}`,
      'balance roundrobin',
      'option httpchk GET /',
      'http-check expect rstatus ^(200)$',
      'timeout check 3s',
      `server ${M1} 10.80.0.11:80 weight 1 check inter 3s fall 3 rise 3`,
      `server ${M2} 10.80.0.12:80 weight 1 check inter 3s fall 3 rise 3`,
    ])
      assert.ok(l.includes(want), `${want} in\n${d.haproxy.config}`);
    assert.ok(!l.some((x) => x.startsWith('maxconn') && !x.includes('4096')), 'no VIP maxconn');
    assert.deepEqual(d.rejected, []);
  });

  test('methods, limits, weights, persistence and monitor kinds in haproxy’s words', () => {
    const p = poolOf({ lb_method: 'LEAST_CONNECTIONS', members: [member(M1, '10.80.0.11', 0)] });
    const vip = p.vip as NonNullable<typeof p.vip>;
    vip.connection_limit = 250;
    vip.session_persistence = { type: 'HTTP_COOKIE', cookie_name: null };
    (p.health_monitor as NonNullable<typeof p.health_monitor>).expected_codes = '200-202';
    const l = lines(desiredPool(p, S) as DesiredPool);
    for (const want of [
      'balance leastconn',
      'maxconn 250',
      'cookie SRV insert indirect nocache',
      'http-check expect rstatus ^(200|201|202)$',
    ])
      assert.ok(l.includes(want), want);
    assert.ok(l.some((x) => x.startsWith(`server ${M1} 10.80.0.11:80 weight 0 `)));

    const tcp = lines(
      desiredPool(
        poolOf({
          protocol: 'TCP',
          lb_method: 'SOURCE_IP',
          health_monitor: monitorOf({ type: 'PING' }),
        }),
        S,
      ) as DesiredPool,
    );
    assert.ok(tcp.includes('mode tcp') && tcp.includes('balance source'));
    assert.ok(!tcp.includes('option forwardfor'), 'forwardfor is HTTP only');
    assert.ok(!tcp.some((x) => x.startsWith('option httpchk')), 'PING is a connect check');
    const https = lines(
      desiredPool(
        poolOf({
          protocol: 'HTTPS',
          health_monitor: monitorOf({ type: 'HTTPS' }),
        }),
        S,
      ) as DesiredPool,
    );
    assert.ok(https.includes('mode tcp') && https.includes('option ssl-hello-chk'));
  });

  test('SOURCE_IP persistence is a stick table; an app cookie sticks on its name', () => {
    const p = poolOf();
    const vip = p.vip as NonNullable<typeof p.vip>;
    vip.session_persistence = { type: 'SOURCE_IP', cookie_name: null };
    assert.ok(lines(desiredPool(p, S) as DesiredPool).includes('stick on src'));
    vip.session_persistence = { type: 'APP_COOKIE', cookie_name: 'JSESSIONID' };
    assert.ok(lines(desiredPool(p, S) as DesiredPool).includes('stick match req.cook(JSESSIONID)'));
  });

  test('a member whose address is no IP is left out and listed; the others are served', () => {
    const bad = '9c4d5e6f-7081-4c2d-9e3f-4a5b6c7d8e9f';
    const arrived = [{ resource: 'member' as const, id: M2, reason: 'weight: too big' }];
    const p = poolOf({ members: [member(M1, '10.80.0.11'), member(bad, '10.80.0')] });
    const d = desiredPool(p, S, arrived) as DesiredPool;
    assert.deepEqual(d.rejected, [
      ...arrived,
      { resource: 'member', id: bad, reason: 'address is not an IP address' },
    ]);
    assert.ok(!d.haproxy.config.includes(bad));
    assert.ok(d.haproxy.config.includes(`server ${M1} `));
  });

  test('a VIP address off its subnet’s family throws, naming the field', () => {
    const p = poolOf();
    (p.vip as NonNullable<typeof p.vip>).port.ip_address = 'fd00::5';
    assert.throws(
      () => desiredPool(p, S),
      (e: unknown) => {
        assert.ok(e instanceof ValidationError);
        assert.match(e.message, /vip\.port\.ip_address/);
        return true;
      },
    );
  });

  test('the global maxconn follows the VIP’s connection_limit within the open file limit', () => {
    const withLimit = (limit: number, fileLimit = 20_000) => {
      const p = poolOf();
      (p.vip as NonNullable<typeof p.vip>).connection_limit = limit;
      const d = desiredPool(p, settingsOf(S.stateRoot, { fileLimit })) as DesiredPool;
      const maxconns = lines(d).filter((l) => l.startsWith('maxconn '));
      return { maxconns, cap: d.connectionCap };
    };
    assert.deepEqual(withLimit(-1), { maxconns: ['maxconn 4096'], cap: undefined });
    assert.deepEqual(withLimit(6000), {
      maxconns: ['maxconn 6000', 'maxconn 6000'],
      cap: undefined,
    });
    // (20000 - 256 reserved - 2 servers) / 2 = 9871.
    assert.deepEqual(withLimit(50_000), {
      maxconns: ['maxconn 9871', 'maxconn 9871'],
      cap: { asked: 50_000, served: 9871 },
    });
    assert.deepEqual(withLimit(-1, 2000), { maxconns: ['maxconn 871'], cap: undefined });
    assert.deepEqual(withLimit(1_000_000, Number.POSITIVE_INFINITY).cap, {
      asked: 1_000_000,
      served: 100_000,
    });
    assert.deepEqual(maxconnOf(9871, 2, 20_000), { asked: 9871, served: 9871 });
    assert.deepEqual(maxconnOf(9872, 2, 20_000), { asked: 9872, served: 9871 });
    assert.deepEqual(maxconnOf(9872, 0, 20_000), { asked: 9872, served: 9872 });
  });

  test('a state_path leaving a stats socket too long for haproxy is refused, naming it', () => {
    assert.equal(maxSocketPath(32_768), 97, 'pids of 5 digits: haproxy’s own limit');
    assert.equal(maxSocketPath(4_194_304), 95, '7 digits: <path>.<pid>.tmp in 107');
    assert.equal(maxSocketPath(100_000), 97);
    assert.equal(maxSocketPath(100_001), 96);
    const at = (n: number) => `/${'s'.repeat(n - 1)}`;
    const settings = (p: string) => settingsOf(`${p}/lbaas`);
    assert.equal(statsSocketOf(stateDirOf(settings(at(39)), POOL)).length, 95);
    checkStatePath(settings(at(39)), at(39), 95);
    checkStatePath(settings(at(41)), at(41), 97);
    checkStatePath(settings('/var/lib/kumo'), '/var/lib/kumo', 95);
    assert.throws(
      () => checkStatePath(settings(at(40)), at(40), 95),
      /^Error: \[DEFAULT\] state_path "\/s+" is 1 character\(s\) too long .* at most 39 characters$/,
    );
  });
});

describe('planPool', () => {
  test('a new pool: state and marker, namespace, plug, move, one batch, config, check, start', () => {
    const d = served();
    const steps = planPool(d, emptyObserved(DIR), S, ids);
    assert.deepEqual(
      steps.map((s) => s.why),
      [
        'state directory',
        'ownership marker',
        'the VIP device',
        'namespace',
        'plug into br-int',
        'move the port into its namespace',
        'link, address and route',
        'haproxy.cfg',
        'haproxy -c',
        'start the pool haproxy',
        'the config haproxy started with',
      ],
    );
    assert.deepEqual(steps[0], {
      kind: 'mkdir',
      path: DIR,
      mode: 0o750,
      why: 'state directory',
    });
    const batch = specOf(steps[6]);
    assert.match(String(batch.stdin), /route replace 0\.0\.0\.0\/0 via 10\.80\.0\.1 proto static/);
    const start = specOf(steps[9]);
    assert.equal(start.netns, NS);
    assert.deepEqual(start.argv, [
      'haproxy',
      '-f',
      `${DIR}/haproxy.cfg`,
      '-p',
      `${DIR}/haproxy.pid`,
      '-D',
    ]);
  });

  test('a pool in order plans nothing (an agent restart adopts its haproxy)', () => {
    const d = served();
    assert.deepEqual(planPool(d, inOrder(d), S, ids), []);
  });

  test('a state directory made looser (0755, before 0750) is tightened; a missing device record written', () => {
    const d = served();
    const o = { ...inOrder(d), stateDirMode: 0o755, device: null };
    assert.deepEqual(planPool(d, o, S, ids), [
      { kind: 'command', spec: { argv: ['chmod', '0750', DIR] }, why: 'state 0750' },
      { kind: 'file', path: `${DIR}/device`, content: `${d.port.device}\n`, why: 'the VIP device' },
    ]);
  });

  test('a member change: config written, checked, hitless reload with -x and -sf, digest', () => {
    const before = served();
    const d = served({ members: [member(M1, '10.80.0.11')] });
    const steps = planPool(d, inOrder(before), S, ids);
    assert.deepEqual(
      steps.map((s) => s.why),
      ['haproxy.cfg', 'haproxy -c', 'reload the pool haproxy', 'the config haproxy reloaded'],
    );
    const reload = specOf(steps[2]);
    assert.deepEqual(reload.argv.slice(-4), ['-x', `${DIR}/haproxy.sock`, '-sf', '4242']);
    assert.equal(reload.netns, NS);
    assert.deepEqual(steps[3], {
      kind: 'file',
      path: `${DIR}/haproxy.loaded`,
      content: configDigest(d.haproxy.config),
      why: 'the config haproxy reloaded',
    });
  });

  test('a haproxy in a stale namespace is replaced (no -x: its sockets are the old namespace’s)', () => {
    const d = served();
    const o = inOrder(d);
    const steps = planPool(d, { ...o, haproxy: { ...o.haproxy, inNetns: false } }, S, ids);
    assert.deepEqual(
      steps.map((s) => s.why),
      ['haproxy -c', 'pool haproxy in a stale namespace', 'the config haproxy reloaded'],
    );
    const argv = specOf(steps[1]).argv;
    assert.ok(!argv.includes('-x'));
    assert.deepEqual(argv.slice(-2), ['-sf', '4242']);
  });

  test('a config on disk that failed its check (or was never loaded) is checked before any load', () => {
    const d = served();
    const o = inOrder(d);
    const stale = { ...o, haproxy: { ...o.haproxy, loaded: configDigest('an older config') } };
    const steps = planPool(d, stale, S, ids);
    assert.deepEqual(
      steps.map((s) => s.why),
      ['haproxy -c', 'reload the pool haproxy', 'the config haproxy reloaded'],
    );
    assert.deepEqual(specOf(steps[0]).argv, ['haproxy', '-c', '-f', `${DIR}/haproxy.cfg`]);
    const stopped = planPool(d, { ...o, haproxy: { ...o.haproxy, pid: null } }, S, ids);
    assert.deepEqual(
      stopped.map((s) => s.why),
      ['haproxy -c', 'start the pool haproxy', 'the config haproxy started with'],
    );
  });

  test('a running haproxy that does not answer on the stats socket is reloaded without -x', () => {
    const before = served();
    const o = inOrder(before);
    const d = served({ members: [member(M1, '10.80.0.11')] });
    const steps = planPool(d, { ...o, haproxy: { ...o.haproxy, socketServed: false } }, S, ids);
    const argv = specOf(steps[2]).argv;
    assert.ok(!argv.includes('-x'), argv.join(' '));
    assert.deepEqual(argv.slice(-2), ['-sf', '4242']);
  });

  test('the default route follows the gateway; none without one', () => {
    const d = served();
    const p = poolOf();
    (p.vip as NonNullable<typeof p.vip>).port.gateway_ip = null;
    const noGw = desiredPool(p, S) as DesiredPool;
    const steps = planPool(noGw, inOrder(d), S, ids);
    assert.equal(steps.length, 1);
    const batch = specOf(steps[0]);
    assert.equal(batch.stdin, 'route del 0.0.0.0/0 via 10.80.0.1 proto static\n');
  });

  test('teardown: haproxy stopped, port unplugged, namespace and state removed — only ours', () => {
    const o = inOrder(served());
    assert.deepEqual(
      planPool(null, o, S, ids).map((s) => s.why),
      ['stop the pool haproxy', 'unplug', 'remove namespace', 'remove state'],
    );
    assert.deepEqual(planPool(null, { ...o, owned: false }, S, ids), []);
  });

  test('teardown stops every old haproxy of the pool left in its namespace, before deleting it', () => {
    const o = inOrder(served());
    const running = o.haproxy.pid as number;
    const steps = planPool(null, { ...o, haproxys: [running - 7, running, running + 3] }, S, ids);
    assert.deepEqual(
      steps.map((s) => s.why),
      [
        'stop the pool haproxy',
        'stop an old haproxy',
        'stop an old haproxy',
        'unplug',
        'remove namespace',
        'remove state',
      ],
    );
    const expected = `-f ${DIR}/haproxy.cfg `;
    assert.deepEqual(steps.slice(1, 3), [
      { kind: 'stop-pid', pid: running - 7, expected, why: 'stop an old haproxy' },
      { kind: 'stop-pid', pid: running + 3, expected, why: 'stop an old haproxy' },
    ]);
    const noMain = { ...o, haproxy: { ...o.haproxy, pid: null }, haproxys: [running + 3] };
    assert.deepEqual(
      planPool(null, noMain, S, ids).map((s) => s.why),
      ['stop an old haproxy', 'unplug', 'remove namespace', 'remove state'],
      'no running haproxy: the old one still stopped',
    );
    assert.deepEqual(planPool(null, { ...o, owned: false, haproxys: [running + 3] }, S, ids), []);
  });
});
