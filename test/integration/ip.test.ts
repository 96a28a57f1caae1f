/**
 * host/ip against the real `ip` (iproute2) in namespaces this test creates (needs root).
 *
 * Invariants under test: namespaces, veths, addresses and routes are made only through the
 * module's command builders (one `ip -batch` process for many changes), read back through
 * `ip -j`, and removed; a bad name or address is refused before anything runs. Traffic and
 * addresses stay inside the test's own namespaces (198.51.100.0/24, 2001:db8:51::/64).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import {
  addrAdd,
  addrDel,
  ipBatch,
  ipCommand,
  linkSetMac,
  linkSetMtu,
  linkSetNetns,
  linkUp,
  listAddrs,
  listLinks,
  routeReplace,
  vethAdd,
} from '../../host/ip/link.ts';
import { dhcpNamespace, InvalidNameError, portDevice } from '../../host/ip/names.ts';
import { listNetns, netnsAddCommand, netnsDelCommand, netnsExists } from '../../host/ip/netns.ts';

const runner = createCommandRunner();
const tag = randomBytes(3).toString('hex');
const A = `kumo-ip-${tag}-a`;
const B = `kumo-ip-${tag}-b`;
const VA = `kia${tag}`;
const VB = `kib${tag}`;

const globalCidrs = async (ns: string, dev: string) =>
  (await listAddrs(runner, ns, dev))
    ?.filter((a) => a.scope === 'global')
    .map((a) => a.cidr)
    .sort();

describe('host/ip against real namespaces', () => {
  after(() => {
    for (const ns of [A, B]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {}
    }
  });

  test('namespaces are created, listed and found', async () => {
    const before = await listNetns(runner);
    assert.ok(!before.some((e) => e.name === A));
    await runner.run(netnsAddCommand(A));
    await runner.run(netnsAddCommand(B));
    const names = (await listNetns(runner)).map((e) => e.name);
    assert.ok(names.includes(A) && names.includes(B), names.join(' '));
    assert.equal(await netnsExists(A), true);
    assert.equal(await netnsExists(`kumo-ip-${tag}-none`), false);
  });

  test('a veth into the second namespace, many changes in one ip -batch, read back', async () => {
    await runner.run(ipCommand(vethAdd(VA, VB), A));
    await runner.run(ipCommand(linkSetNetns(VB, B), A));
    const spec = ipBatch(
      [
        linkSetMac(VA, 'FA:16:3E:51:00:01'),
        linkSetMtu(VA, 1400),
        linkUp(VA),
        linkUp('lo'),
        addrAdd(VA, '198.51.100.1/24'),
        addrAdd(VA, '198.51.100.2/24'),
        addrAdd(VA, '2001:db8:51::1/64'),
        routeReplace('203.0.113.0/24', { via: '198.51.100.9' }),
      ],
      A,
    );
    assert.deepEqual(spec.argv, ['ip', '-n', A, '-batch', '-']);
    assert.equal(String(spec.stdin).split('\n').length, 9, 'one line per change');
    await runner.run(spec);
    await runner.run(ipBatch([linkUp(VB), addrAdd(VB, '198.51.100.9/24')], B));

    assert.deepEqual(await globalCidrs(A, VA), [
      '198.51.100.1/24',
      '198.51.100.2/24',
      '2001:db8:51::1/64',
    ]);
    const links = await listLinks(runner, A);
    const va = links.find((l) => l.name === VA);
    assert.ok(va, 'veth end in A');
    assert.equal(va.mac, 'fa:16:3e:51:00:01');
    assert.equal(va.mtu, 1400);
    assert.equal(va.up, true);
    assert.ok(!links.some((l) => l.name === VB), 'the peer moved to B');
    assert.deepEqual(await globalCidrs(B, VB), ['198.51.100.9/24']);
    const routes = JSON.parse((await runner.run(ipCommand(['-j', 'route', 'show'], A))).stdout);
    assert.ok(
      routes.some(
        (r: { dst?: string; gateway?: string }) =>
          r.dst === '203.0.113.0/24' && r.gateway === '198.51.100.9',
      ),
    );
    // The veth really connects the two namespaces.
    await runner.run({ argv: ['ping', '-c', '1', '-W', '2', '198.51.100.9'], netns: A });
  });

  test('a failing batch line stops the batch and is a CommandError', async () => {
    const e = await runner
      .run(
        ipBatch(
          [
            addrAdd(VA, '198.51.100.3/24'),
            addrAdd(VA, '198.51.100.1/24'),
            addrAdd(VA, '198.51.100.4/24'),
          ],
          A,
        ),
      )
      .then(
        () => assert.fail('expected the batch to fail'),
        (err: unknown) => err,
      );
    assert.ok(e instanceof CommandError, String(e));
    assert.match(e.stderr, /File exists|already assigned/);
    const cidrs = await globalCidrs(A, VA);
    assert.ok(cidrs?.includes('198.51.100.3/24'), 'lines before the failure applied');
    assert.ok(!cidrs?.includes('198.51.100.4/24'), 'lines after it did not run');
  });

  test('addresses are removed; a missing device reads as null', async () => {
    await runner.run(ipBatch([addrDel(VA, '198.51.100.2/24'), addrDel(VA, '198.51.100.3/24')], A));
    assert.deepEqual(await globalCidrs(A, VA), ['198.51.100.1/24', '2001:db8:51::1/64']);
    assert.equal(await listAddrs(runner, A, 'kumo-nodev'), null);
    await assert.rejects(listAddrs(runner, `kumo-ip-${tag}-none`, VA), CommandError);
  });

  test('invalid names and values are refused before anything runs', async () => {
    const refused: [string, () => unknown][] = [
      ['netns with a space', () => netnsAddCommand('qdhcp-x y')],
      ['netns with a newline', () => netnsDelCommand(`${A}\nreboot`)],
      ['netns path', () => netnsAddCommand('../../etc')],
      ['netns flag', () => netnsAddCommand('-all')],
      ['device of 16 chars', () => linkUp('tap0123456789abc')],
      ['device with a quote', () => linkUp('tap"x')],
      ['device with a slash', () => addrAdd('a/b', '198.51.100.5/24')],
      ['address with a newline', () => addrAdd(VA, '198.51.100.5/24\nlink del lo')],
      ['address without prefix', () => addrAdd(VA, '198.51.100.5')],
      ['address with a zone', () => addrAdd(VA, 'fe80::1%lo/64')],
      ['bad MAC', () => linkSetMac(VA, 'fa:16:3e:00:00:0g')],
      ['bad MTU', () => linkSetMtu(VA, 10)],
      ['move to a bad netns', () => linkSetNetns(VA, 'a b')],
      ['-n with a bad netns', () => ipCommand(linkUp(VA), 'x;y')],
      ['batch token with a space', () => ipBatch([['link', 'set', 'dev', `${VA} down`]], A)],
      ['batch token with a #', () => ipBatch([['link', 'set', 'dev', VA, '#']], A)],
      ['empty batch', () => ipBatch([], A)],
      ['dhcp namespace from a non-uuid', () => dhcpNamespace('net 1')],
    ];
    for (const [what, build] of refused) assert.throws(build, Error, what);
    assert.throws(() => linkUp('tap"x'), InvalidNameError);
    const names = (await listNetns(runner)).map((e) => e.name);
    assert.ok(!names.some((n) => n.startsWith('qdhcp-x') || n.includes('\n')));
    const id = '5a0e2f1c-3b4d-4e6f-8a9b-0c1d2e3f4a5b';
    assert.equal(dhcpNamespace(id), `qdhcp-${id}`);
    assert.equal(portDevice('tap', id), 'tap5a0e2f1c-3b');
  });

  test('namespaces are deleted', async () => {
    await runner.run(netnsDelCommand(A));
    await runner.run(netnsDelCommand(B));
    assert.equal(await netnsExists(A), false);
    assert.equal(await netnsExists(B), false);
  });
});
