/**
 * The L3 agent's partial service and background work: a bad interface, route or floating
 * IP is left out and listed with its reason while the rest is served, and no bad value
 * reaches a command or an OVSDB transaction; a bad gateway port is the router's error;
 * background commands (GARPs) run at most a limit at once, in order, a failure logged.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backgroundRunner } from '../../agents/l3/agent.ts';
import { type DesiredRouter, desiredRouter } from '../../agents/l3/desired.ts';
import { type L3Router, parseRouterInfo } from '../../contracts/l3.ts';
import type { CommandSpec } from '../../core/exec.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import { garpCommand } from '../../host/arping/arping.ts';
import { ipForwardCommand } from '../../host/sysctl/sysctl.ts';
import {
  expected,
  garps,
  harness,
  ID,
  NS,
  port,
  QG,
  routerOf,
  S,
  uuid,
} from '../helpers/l3-agent-kit.ts';

describe('kumo-l3-agent: a bad interface, route or floating IP is left out and reported', () => {
  const raw = routerOf(ID) as unknown as Record<string, unknown[]>;
  const BAD_IF = uuid('f');
  const BAD_FIP = uuid('6');
  raw.interfaces?.push(port('f', 'fa:16:3e:00:0f:01', '10.50.0.1', '10.60.0.0/24', null));
  raw.routes?.push(
    { destination: '10.77.0.0/16', nexthop: '10.88.0.1' },
    { destination: '10.66.0.0/16\nCOMMIT', nexthop: '10.2.0.9' },
  );
  raw.floating_ips?.push({
    id: BAD_FIP,
    floating_ip_address: '203.0.113.30',
    fixed_ip_address: '10.50.0.5',
    port_id: uuid('e'),
    status: 'ACTIVE',
  });

  test('each is listed with its reason; the rest is served; no bad value reaches a step', async () => {
    const info = parseRouterInfo({ router: raw });
    const d = desiredRouter(info.router, S, info.rejected) as DesiredRouter;
    assert.deepEqual(
      d.rejected.map((r) => [r.resource, r.id]),
      [
        ['floatingip', BAD_FIP],
        ['port', BAD_IF],
        ['route', 'route-10_77_0_0_16'],
        ['route', 'routes-2'],
      ],
    );
    const why = (id: string) => d.rejected.find((r) => r.id === id)?.reason ?? '';
    assert.match(
      why(BAD_IF),
      /^interfaces\[2\]\.fixed_ips\[0\]\.ip_address: is not on 10\.60\.0\.0\/24/,
    );
    assert.match(why('route-10_77_0_0_16'), /nexthop: is not on a subnet of the router/);
    assert.match(why(BAD_FIP), /fixed_ip_address: is not on an interface's subnet/);
    assert.deepEqual(d.fipStatuses, [
      { id: uuid('d'), status: 'ACTIVE' },
      { id: BAD_FIP, status: 'ERROR' },
    ]);
    const good = desiredRouter(routerOf(ID), S) as DesiredRouter;
    assert.deepEqual(d.ports, good.ports, 'the rest is served as before');
    assert.deepEqual(d.routes, good.routes);
    assert.deepEqual(d.iptables, good.iptables);

    const h = harness(raw as unknown as L3Router);
    h.runner.expect(
      ...[
        ['ip', 'netns', 'add', NS],
        ['ip', '-n', 'klt-vswitchd', '-batch', '-'],
        ['ip', '-n', NS, '-batch', '-'],
      ].map((argv) => ({ argv })),
      expected(ipForwardCommand(NS)),
      { argv: ['iptables-restore', '--noflush'], netns: NS },
      ...garps(['203.0.113.10', '203.0.113.20']),
    );
    await h.reconcile();
    h.runner.verify();
    const everything = JSON.stringify([h.runner.calls, h.ovsdb.transactions]);
    for (const bad of ['10.50.0', '10.60.0', '10.77.0', '10.66.0', '203.0.113.30', 'qr-ffffffff'])
      assert.ok(!everything.includes(bad), `${bad} reached no command`);
    const status = h.sent.at(-1)?.[0];
    assert.equal(status?.status, 'ACTIVE');
    assert.deepEqual(status?.rejected, d.rejected);
    assert.deepEqual(h.fipCalls, [d.fipStatuses]);
  });

  test('a gateway port that fails the checks is the router’s error, naming the field', () => {
    const r = routerOf(ID);
    (r.gw_port as { fixed_ips: { cidr: string }[] }).fixed_ips[0] = {
      ...(r.gw_port?.fixed_ips[0] as L3Router['interfaces'][0]['fixed_ips'][0]),
      cidr: '198.51.100.0/24',
    };
    assert.throws(
      () => desiredRouter(r, S),
      /^ValidationError: gw_port\.fixed_ips\[0\]\.ip_address: is not on 198\.51\.100\.0\/24/,
    );
  });
});

test('background commands: at most the limit at once, the rest in order, a failure logged', async () => {
  const started: string[] = [];
  const finish = new Map<string, (ok: boolean) => void>();
  const runner = {
    run: (spec: CommandSpec) =>
      new Promise<{ stdout: string; stderr: string; exitCode: number }>((resolve, reject) => {
        const ip = spec.argv.at(-1) as string;
        started.push(ip);
        finish.set(ip, (ok) =>
          ok ? resolve({ stdout: '', stderr: '', exitCode: 0 }) : reject(new Error(`${ip} failed`)),
        );
      }),
  };
  const warned: unknown[] = [];
  const log = { ...silentLogger(), warn: (o: unknown) => void warned.push(o) } as Logger;
  const run = backgroundRunner(runner, log, 2);
  for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'])
    run(garpCommand({ device: QG, ip, count: 1, netns: NS }), { routerId: ID, why: ip });
  assert.deepEqual(started, ['192.0.2.1', '192.0.2.2']);
  finish.get('192.0.2.1')?.(false);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  assert.deepEqual(warned, [{ routerId: ID, why: '192.0.2.1', err: 'Error: 192.0.2.1 failed' }]);
  finish.get('192.0.2.2')?.(true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started.at(-1), '192.0.2.4');
});
