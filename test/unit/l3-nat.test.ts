/**
 * agents/l3/nat.ts (pure): a router's NAT as an iptables model, rendered for a fresh
 * namespace against golden files (test/golden/iptables/l3-nat-*.txt), its canonical
 * spelling (validateModel changes nothing, so a second apply is a no-op), its order
 * independence, and the refusal of every bad value by field name. Also the argv of the
 * L3 host commands (arping, conntrack, sysctl) and their validation.
 *
 * `KUMO_UPDATE_GOLDEN=1` rewrites the golden files (then review the diff).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { L3_CHAIN_PREFIX, type NatInput, natModel } from '../../agents/l3/nat.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { garpCommand } from '../../host/arping/arping.ts';
import { conntrackDeleteCommands } from '../../host/conntrack/conntrack.ts';
import { InvalidNameError } from '../../host/ip/names.ts';
import { validateModel } from '../../host/iptables/model.ts';
import { render } from '../../host/iptables/render.ts';
import { ipForwardCommand } from '../../host/sysctl/sysctl.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'iptables');

function golden(name: string, actual: string) {
  const path = join(GOLDEN, name);
  if (process.env.KUMO_UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden file ${name}`);
}

const empty = { family: 4 as const, prefix: L3_CHAIN_PREFIX, tables: new Map() };
const fresh = (input: NatInput) => render(validateModel(natModel(input)), empty);

/** Two interfaces, a gateway, SNAT on, two floating IPs (out of order on purpose). */
const ROUTER: NatInput = {
  qgDevice: 'qg-0a1b2c3d-4e',
  gatewayIp: '203.0.113.2',
  enableSnat: true,
  internalCidrs: ['10.0.1.0/24', '10.0.0.0/24'],
  floatingIps: [
    { floatingIp: '203.0.113.20', fixedIp: '10.0.1.7' },
    { floatingIp: '203.0.113.9', fixedIp: '10.0.0.5' },
  ],
};

function refused(input: unknown, field: string) {
  assert.throws(
    () => natModel(input as NatInput),
    (e: unknown) => {
      assert.ok(e instanceof ValidationError, String(e));
      assert.equal(e.field, field, e.message);
      return true;
    },
    `${JSON.stringify(input)} refused naming ${field}`,
  );
}

describe('natModel', () => {
  test('gateway, SNAT on, two interfaces, two floating IPs', () => {
    golden('l3-nat-snat.txt', fresh(ROUTER));
  });

  test('SNAT off: floating IPs and the hairpin rule stay, no outbound SNAT', () => {
    const text = fresh({ ...ROUTER, enableSnat: false });
    golden('l3-nat-no-snat.txt', text);
    assert.doesNotMatch(text, /-o qg-0a1b2c3d-4e -j SNAT/);
  });

  test('no gateway IP: floating IP rules only, nothing to the gateway', () => {
    const text = fresh({ ...ROUTER, gatewayIp: null });
    golden('l3-nat-no-gateway.txt', text);
    assert.doesNotMatch(text, /203\.0\.113\.2\b/);
  });

  test('no floating IPs: the four chains exist, empty where nothing applies', () => {
    const m = natModel({ ...ROUTER, floatingIps: [] });
    assert.deepEqual(Object.keys(m.tables.nat ?? {}), [
      'PREROUTING',
      'OUTPUT',
      'POSTROUTING',
      'snat',
    ]);
    assert.deepEqual(m.tables.nat?.PREROUTING, []);
    assert.equal(m.tables.filter, undefined, 'the filter table is not touched');
  });

  test('rules are already in iptables-save spelling: validateModel changes no token', () => {
    const m = natModel(ROUTER);
    const state = validateModel(m).tables.get('nat');
    for (const [key, rules] of Object.entries(m.tables.nat ?? {}))
      assert.deepEqual(state?.chains.get(`${L3_CHAIN_PREFIX}-${key}`), rules, key);
  });

  test('floating IPs sort by address (numerically), CIDRs by network, duplicates collapse', () => {
    const a = natModel(ROUTER);
    const b = natModel({
      ...ROUTER,
      internalCidrs: ['10.0.0.0/24', '10.0.1.9/24', '10.0.1.0/24'],
      floatingIps: [...ROUTER.floatingIps].reverse(),
    });
    assert.deepEqual(b, a);
    const nested = (cidrs: string[]) => natModel({ ...ROUTER, internalCidrs: cidrs });
    assert.deepEqual(
      nested(['10.0.0.0/24', '10.0.0.0/16']),
      nested(['10.0.0.0/16', '10.0.0.0/24']),
    );
    assert.deepEqual(a.tables.nat?.PREROUTING?.[0], [
      ...['-d', '203.0.113.9/32', '-j', 'DNAT', '--to-destination', '10.0.0.5'],
    ]);
  });

  test('newline, space, quote or ; in any value is refused, naming the field', () => {
    const fip = (i: number, key: string, v: string) => ({
      ...ROUTER,
      floatingIps: ROUTER.floatingIps.map((f, j) => (i === j ? { ...f, [key]: v } : f)),
    });
    for (const bad of ['\n', ' ', '"', "'", ';', ' -j ACCEPT', '\n-A INPUT -j ACCEPT']) {
      refused({ ...ROUTER, qgDevice: `qg-x${bad}` }, 'qgDevice');
      refused({ ...ROUTER, gatewayIp: `203.0.113.2${bad}` }, 'gatewayIp');
      refused(
        { ...ROUTER, internalCidrs: ['10.0.0.0/24', `10.0.1.0/24${bad}`] },
        'internalCidrs[1]',
      );
      refused(fip(0, 'floatingIp', `${bad}203.0.113.20`), 'floatingIps[0].floatingIp');
      refused(fip(1, 'fixedIp', `10.0.0.5${bad}`), 'floatingIps[1].fixedIp');
    }
  });

  test('addresses and CIDRs are strict IPv4; other shapes are refused by name', () => {
    refused({ ...ROUTER, gatewayIp: '2001:db8::1' }, 'gatewayIp');
    refused({ ...ROUTER, gatewayIp: '203.0.113.02' }, 'gatewayIp');
    refused({ ...ROUTER, gatewayIp: '203.0.113.2/24' }, 'gatewayIp');
    refused({ ...ROUTER, gatewayIp: 'localhost' }, 'gatewayIp');
    refused({ ...ROUTER, internalCidrs: ['0.0.0.0/0'] }, 'internalCidrs[0]');
    refused({ ...ROUTER, internalCidrs: ['10.0.0.0/33'] }, 'internalCidrs[0]');
    refused({ ...ROUTER, internalCidrs: ['10.0.0.0/024'] }, 'internalCidrs[0]');
    refused({ ...ROUTER, internalCidrs: ['10.0.0.0'] }, 'internalCidrs[0]');
    refused({ ...ROUTER, internalCidrs: ['2001:db8::/64'] }, 'internalCidrs[0]');
    refused({ ...ROUTER, internalCidrs: '10.0.0.0/24' }, 'internalCidrs');
    refused({ ...ROUTER, qgDevice: '-qg' }, 'qgDevice');
    refused({ ...ROUTER, qgDevice: 'qg-0123456789abcdef' }, 'qgDevice');
    refused({ ...ROUTER, qgDevice: 7 }, 'qgDevice');
    refused({ ...ROUTER, enableSnat: 'yes' }, 'enableSnat');
    refused({ ...ROUTER, floatingIps: [null] }, 'floatingIps[0]');
    refused({ ...ROUTER, floatingIps: [{ floatingIp: '203.0.113.9' }] }, 'floatingIps[0].fixedIp');
    refused(
      { ...ROUTER, floatingIps: [...ROUTER.floatingIps, ROUTER.floatingIps[1]] },
      'floatingIps[2].floatingIp',
    );
  });
});

function badName(fn: () => unknown, field: string) {
  assert.throws(fn, (e: unknown) => e instanceof InvalidNameError && e.field === field);
}

describe('L3 host commands', () => {
  test('garpCommand: arping -U -c N -I DEV IP in the namespace, bounded in time', () => {
    const spec = garpCommand({
      device: 'qg-0a1b2c3d-4e',
      ip: '203.0.113.9',
      count: 3,
      netns: 'ns1',
    });
    assert.deepEqual(spec.argv, ['arping', '-U', '-c', '3', '-I', 'qg-0a1b2c3d-4e', '203.0.113.9']);
    assert.equal(spec.netns, 'ns1');
    assert.ok((spec.timeoutMs ?? 0) > 3000);
    const ok = { device: 'qg-x', ip: '203.0.113.9', count: 1 };
    assert.equal(garpCommand(ok).netns, undefined);
    badName(() => garpCommand({ ...ok, device: 'qg x' }), 'arping device');
    badName(() => garpCommand({ ...ok, device: '-I' }), 'arping device');
    badName(() => garpCommand({ ...ok, ip: '203.0.113.9\n' }), 'arping ip');
    badName(() => garpCommand({ ...ok, ip: '-V' }), 'arping ip');
    badName(() => garpCommand({ ...ok, ip: '2001:db8::1' }), 'arping ip');
    for (const count of [0, 61, 1.5, Number.NaN])
      badName(() => garpCommand({ ...ok, count }), 'arping count');
    badName(() => garpCommand({ ...ok, netns: 'a b' }), 'netns name');
  });

  test('conntrackDeleteCommands: -d and --reply-dst, exit 1 (nothing found) is success', () => {
    const specs = conntrackDeleteCommands('203.0.113.9', 'ns1');
    assert.deepEqual(
      specs.map((s) => [s.argv.join(' '), s.netns, s.okExitCodes]),
      [
        ['conntrack -D -f ipv4 -d 203.0.113.9', 'ns1', [1]],
        ['conntrack -D -f ipv4 -q 203.0.113.9', 'ns1', [1]],
      ],
    );
    badName(() => conntrackDeleteCommands('203.0.113.9;'), 'conntrack ip');
    badName(() => conntrackDeleteCommands('10.0.0.0/24'), 'conntrack ip');
    badName(() => conntrackDeleteCommands('203.0.113.9', '../x'), 'netns name');
  });

  test('ipForwardCommand: sysctl -w in the namespace; the name is checked', () => {
    assert.deepEqual(ipForwardCommand('qrouter-1'), {
      argv: ['sysctl', '-w', 'net.ipv4.ip_forward=1'],
      netns: 'qrouter-1',
    });
    badName(() => ipForwardCommand('a\nb'), 'netns name');
  });
});
