/**
 * host/ip/route.ts, the routes the L3 agent owns: `ip -j route show table all proto static`
 * as iproute2 6.1 prints it (captured from a real namespace) parsed into canonical routes
 * of both families, and the batch lines refusing anything not canonical before a line
 * exists (a newline, a host-bit destination, a gateway of the other family).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  canonicalCidr,
  listLinksAndStaticRoutes,
  listStaticRoutes,
  sameRoute,
  staticRouteDel,
  staticRouteReplace,
} from '../../host/ip/route.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

const SHOWN = JSON.stringify([
  { dst: 'default', gateway: '10.5.0.254', dev: 'qg-1', flags: [] },
  { dst: '10.9.0.0/16', gateway: '10.5.0.7', dev: 'qr-1', flags: [] },
  { dst: '10.9.9.9', gateway: '10.5.0.8', dev: 'qr-1', flags: [] },
  { dst: '2001:db9::/48', gateway: '2001:db8::fe', dev: 'qr-1', metric: 1024, flags: [] },
  { dst: 'default', gateway: '2001:DB8::ff', dev: 'qg-1', metric: 1024, flags: [] },
  { dst: '10.7.0.0/16', gateway: '10.5.0.9', dev: 'qr-1', table: 'local', flags: [] },
  { dst: '10.6.0.0/16', dev: 'qr-1', flags: [] },
]);

test('ip -j route output → canonical routes of both families, main table, gateway-routed only', async () => {
  const runner = new FakeRunner().expect({
    argv: ['ip', '-n', 'ns1', '-j', 'route', 'show', 'table', 'all', 'proto', 'static'],
    stdout: SHOWN,
  });
  assert.deepEqual(await listStaticRoutes(runner, 'ns1'), [
    { destination: '0.0.0.0/0', via: '10.5.0.254', dev: 'qg-1' },
    { destination: '10.9.0.0/16', via: '10.5.0.7', dev: 'qr-1' },
    { destination: '10.9.9.9/32', via: '10.5.0.8', dev: 'qr-1' },
    { destination: '2001:db9::/48', via: '2001:db8::fe', dev: 'qr-1' },
    { destination: '::/0', via: '2001:db8::ff', dev: 'qg-1' },
  ]);
  runner.verify();
});

test('links and static routes from one ip -j -batch; an onlink route is told apart', async () => {
  const addrs = JSON.stringify([
    { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK'], mtu: 65536, addr_info: [] },
    {
      ifindex: 5,
      ifname: 'qg-1',
      address: 'fa:16:3e:00:0c:01',
      mtu: 1500,
      flags: ['BROADCAST', 'UP'],
      addr_info: [{ family: 'inet', local: '203.0.113.10', prefixlen: 24, scope: 'global' }],
    },
  ]);
  const routes = JSON.stringify([
    { dst: 'default', gateway: '198.51.100.1', dev: 'qg-1', flags: ['onlink'] },
  ]);
  const runner = new FakeRunner().expect({
    argv: ['ip', '-n', 'ns1', '-j', '-batch', '-'],
    stdin: 'addr show\nroute show table all proto static\n',
    stdout: `${addrs}\n${routes}\n`,
  });
  const got = await listLinksAndStaticRoutes(runner, 'ns1');
  runner.verify();
  assert.deepEqual(
    got.links.map((l) => [l.name, l.up, l.addrs.map((a) => a.cidr)]),
    [
      ['lo', false, []],
      ['qg-1', true, ['203.0.113.10/24']],
    ],
  );
  const onlink = { destination: '0.0.0.0/0', via: '198.51.100.1', dev: 'qg-1', onlink: true };
  assert.deepEqual(got.routes, [onlink]);
  assert.ok(sameRoute(onlink, onlink));
  assert.ok(!sameRoute({ ...onlink, onlink: false }, onlink), 'onlink differs: replaced');
  const short = new FakeRunner().expect({
    argv: ['ip', '-n', 'ns1', '-j', '-batch', '-'],
    stdin: 'addr show\nroute show table all proto static\n',
    stdout: `${addrs}\n`,
  });
  await assert.rejects(listLinksAndStaticRoutes(short, 'ns1'), /expected 2 JSON lines/);
  await assert.rejects(listLinksAndStaticRoutes(short, 'ns 1'), /netns/);
});

test('batch lines: proto static, family from the destination; anything not canonical refused', () => {
  assert.deepEqual(staticRouteReplace({ destination: '::/0', via: '2001:db8::1', dev: 'qg-1' }), [
    ...['route', 'replace', '::/0', 'via', '2001:db8::1', 'dev', 'qg-1', 'proto', 'static'],
  ]);
  assert.deepEqual(
    staticRouteReplace({
      destination: '0.0.0.0/0',
      via: '198.51.100.1',
      dev: 'qg-1',
      onlink: true,
    }),
    [
      'route',
      'replace',
      '0.0.0.0/0',
      'via',
      '198.51.100.1',
      'dev',
      'qg-1',
      'onlink',
      'proto',
      'static',
    ],
  );
  assert.throws(
    () => staticRouteReplace({ destination: '0.0.0.0/0', via: '198.51.100.1', onlink: true }),
    /onlink route needs its device/,
  );
  assert.deepEqual(staticRouteDel({ destination: '10.9.0.0/16', via: '10.5.0.7' }), [
    ...['route', 'del', '10.9.0.0/16', 'via', '10.5.0.7', 'proto', 'static'],
  ]);
  for (const bad of [
    { destination: '10.9.0.0/16\nflush', via: '10.5.0.7' },
    { destination: '10.9.0.5/16', via: '10.5.0.7' },
    { destination: 'default', via: '10.5.0.7' },
    { destination: '10.9.0.0/16', via: '2001:db8::1' },
    { destination: '10.9.0.0/16', via: '10.5.0.07' },
  ])
    assert.throws(() => staticRouteReplace(bad), /invalid route/, JSON.stringify(bad));
  assert.throws(
    () => staticRouteReplace({ destination: '::/0', via: '::1', dev: 'a b' }),
    /device/,
  );
  assert.equal(canonicalCidr('10.9.3.5/16'), '10.9.0.0/16');
  assert.equal(canonicalCidr('2001:DB8::5/64'), '2001:db8::/64');
  assert.equal(canonicalCidr('10.9.0.0/33'), null);
});
