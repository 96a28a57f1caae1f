/**
 * The pure input rules of issue 10: contracts/schema.ts (own keys only, characters counted
 * as code points, lone surrogates refused), contracts/inet.ts (IPv4-mapped canonical form),
 * api/subnet-rules.ts (DHCP CIDRs, /0 and mapped CIDRs, nameservers, IP versions) and
 * contracts/servers.ts (Nova's printable-name rule).
 *
 * Invariant under test: each refusal names the field and says why; accepted values come
 * out canonical.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Cidr, parseCidr } from '../../api/ipam.ts';
import {
  checkCidr,
  checkDhcpCidr,
  parseGateway,
  parseNameservers,
  parseRoutes,
} from '../../api/subnet-rules.ts';
import { ApiError } from '../../contracts/errors.ts';
import { canonicalIp, formatIp, parseIp } from '../../contracts/inet.ts';
import { NetworkCreate } from '../../contracts/network.ts';
import { json, obj, optional, str, ValidationError } from '../../contracts/schema.ts';
import { novaNameProblem, ServerCreate } from '../../contracts/servers.ts';

function refuses(fn: () => unknown, field: string, reason: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ValidationError, `expected ValidationError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.match(e.reason, reason);
    return true;
  });
}

function apiRefuses(fn: () => unknown, type: string, message: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${String(e)}`);
    assert.equal(e.type, type);
    assert.match(e.message, message);
    return true;
  });
}

const cidr = (s: string): Cidr => {
  const r = parseCidr(s);
  assert.ok('cidr' in r, s);
  return r.cidr;
};

describe('obj(): only the schema’s own keys are attributes', () => {
  const Thing = obj({ name: optional(str()) });
  test('inherited Object.prototype names are unknown attributes', () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'])
      refuses(
        () => Thing.parse(JSON.parse(`{"${key}": "x"}`)),
        key,
        /is not a recognised attribute/,
      );
    refuses(
      () => NetworkCreate.parse(JSON.parse('{"network": {"constructor": {"name": "x"}}}')),
      'network.constructor',
      /is not a recognised attribute/,
    );
  });
  test('a required key is read from the value itself, never its prototype', () => {
    const Required = obj({ toString: str() });
    refuses(() => Required.parse({}), 'toString', /is required/);
    assert.deepEqual(Required.parse({ toString: 'x' }), { toString: 'x' });
  });
});

describe('str(): characters are code points; lone surrogates are refused', () => {
  const emoji = '\u{1F600}';
  test('lengths count code points, as Neutron and Nova do', () => {
    assert.equal(str({ max: 255 }).parse(emoji.repeat(255)), emoji.repeat(255));
    refuses(() => str({ max: 255 }).parse(emoji.repeat(256), 'n'), 'n', /at most 255 characters/);
    refuses(() => str({ min: 2 }).parse(emoji, 'n'), 'n', /at least 2 characters/);
    assert.equal(str({ min: 2, max: 2 }).parse(`${emoji}${emoji}`), `${emoji}${emoji}`);
  });
  test('a lone surrogate is refused naming the field and the code unit', () => {
    refuses(() => str().parse('a\ud800', 'x.name'), 'x.name', /well-formed.*U\+D800/);
    refuses(() => str().parse('\udfff', 'x.name'), 'x.name', /U\+DFFF/);
    refuses(() => json().parse({ a: ['ok', 'b\ud800'] }, 'p'), 'p.a[1]', /well-formed/);
    refuses(() => json().parse({ 'k\ud800': 1 }, 'p'), 'p', /keys must be well-formed/);
  });
});

describe('IPv4-mapped addresses', () => {
  test('format as ::ffff:a.b.c.d (RFC 5952 §5, as netaddr prints them) and round-trip', () => {
    for (const [input, canonical] of [
      ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
      ['::FFFF:0102:0304', '::ffff:1.2.3.4'],
      ['0:0:0:0:0:ffff:c000:201', '::ffff:192.0.2.1'],
      ['::ffff:0:0', '::ffff:0.0.0.0'],
      ['::fffe:1.2.3.4', '::fffe:102:304'],
      ['::1.2.3.4', '::102:304'],
      ['2001:DB8::0:5', '2001:db8::5'],
    ] as const) {
      assert.equal(canonicalIp(input), canonical, input);
      assert.equal(canonicalIp(canonical), canonical, `${canonical} is a fixed point`);
    }
    const ip = parseIp('::ffff:10.0.0.1');
    assert.equal(ip && formatIp(ip.version, ip.value), '::ffff:10.0.0.1');
  });
});

describe('subnet rules (Neutron _validate_subnet, _validate_subnet_cidr)', () => {
  test('DHCP CIDRs: prefix, multicast, loopback, link-local, 0.0.0.0/x', () => {
    for (const [c, why] of [
      ['10.0.0.0/31', /prefix length that is incompatible with DHCP/],
      ['10.0.0.0/32', /prefix length/],
      ['2001:db8::/127', /prefix length/],
      ['224.0.0.0/24', /^Invalid input for operation: Multicast IP subnet/],
      ['239.255.0.0/16', /Multicast/],
      ['ff02::/64', /Multicast/],
      ['127.0.0.0/8', /Loopback IP subnet is not supported if enable_dhcp is True\.$/],
      ['127.1.0.0/30', /Loopback/],
      ['169.254.169.0/24', /Link-local/],
      ['fe80::/64', /Link-local/],
      ['0.0.0.0/8', /First IP '0\.0\.0\.0'/],
    ] as const)
      apiRefuses(() => checkDhcpCidr(cidr(c)), 'InvalidInput', why);
    for (const c of ['10.0.0.0/30', '2001:db8::/126', '128.0.0.0/1', '223.255.255.0/24'])
      checkDhcpCidr(cidr(c));
  });
  test('any CIDR: no /0, nothing touching ::ffff:0:0/96', () => {
    apiRefuses(() => checkCidr(cidr('0.0.0.0/0')), 'InvalidInput', /0 is not allowed as CIDR/);
    apiRefuses(() => checkCidr(cidr('::/0')), 'InvalidInput', /0 is not allowed as CIDR/);
    for (const c of ['::ffff:0:0/96', '::ffff:10.0.0.0/104', '::/80'])
      apiRefuses(() => checkCidr(cidr(c)), 'BadRequest', /cidr.*IPv4-mapped/);
    for (const c of ['10.0.0.0/8', '::/97', '2001:db8::/32']) checkCidr(cidr(c));
  });
  test('nameservers: IP version, unspecified, IPv4-mapped, canonical, duplicates', () => {
    assert.deepEqual(parseNameservers(6, ['2001:DB8::0:53', '::1']), ['2001:db8::53', '::1']);
    apiRefuses(
      () => parseNameservers(4, ['2001:db8::53']),
      'InvalidInput',
      /^Invalid input for operation: dns_nameserver '2001:db8::53' does not match the ip_version '4'\.$/,
    );
    apiRefuses(() => parseNameservers(4, ['0.0.0.0']), 'BadRequest', /unspecified address/);
    apiRefuses(() => parseNameservers(6, ['::']), 'BadRequest', /unspecified address/);
    apiRefuses(
      () => parseNameservers(6, ['::ffff:8.8.8.8']),
      'BadRequest',
      /dns_nameservers.*IPv4-mapped.*DHCPv6.*give 8\.8\.8\.8 to an IPv4 subnet/,
    );
    apiRefuses(
      () => parseNameservers(6, ['2001:db8::53', '2001:DB8::0:53']),
      'BadRequest',
      /Duplicate nameserver/,
    );
  });
  test('gateway and routes: the subnet IP version, in Neutron’s words', () => {
    apiRefuses(
      () => parseGateway(cidr('10.0.0.0/24'), '2001:db8::1'),
      'InvalidInput',
      /gateway_ip '2001:db8::1' does not match the ip_version '4'/,
    );
    apiRefuses(
      () => parseRoutes(6, [{ destination: '10.0.0.0/8', nexthop: '2001:db8::1' }]),
      'InvalidInput',
      /destination '10\.0\.0\.0\/8' does not match the ip_version '6'/,
    );
    assert.deepEqual(parseRoutes(6, [{ destination: '::FFFF:0:0/96', nexthop: '2001:DB8::1' }]), [
      { destination: '::ffff:0.0.0.0/96', nexthop: '2001:db8::1' },
    ]);
  });
});

describe('Nova names (parameter_types.name)', () => {
  test('printable characters only, no outer whitespace, with an accurate reason', () => {
    assert.equal(novaNameProblem('vm 1 \u2603 é 名前'), undefined);
    assert.match(novaNameProblem('a\u2028b') ?? '', /U\+2028 \(character 2\) is not printable/);
    assert.match(novaNameProblem('é\u2029') ?? '', /U\+2029 \(character 2\)/);
    assert.match(
      novaNameProblem('vm\u{1F600}') ?? '',
      /U\+1F600 \(character 3\) is not printable \(Nova takes characters of the Basic Multilingual Plane only\)/,
    );
    assert.match(novaNameProblem('a\u00adb') ?? '', /U\+00AD/);
    assert.match(novaNameProblem('a\ue000') ?? '', /U\+E000/);
    assert.match(novaNameProblem(' a') ?? '', /must not start or end with whitespace/);
    assert.match(novaNameProblem('a\u2003') ?? '', /must not start or end with whitespace/);
    const server = (name: string) =>
      ServerCreate.parse({ server: { name, flavorRef: '1', imageRef: 'i' } });
    refuses(() => server('vm\u2028'), 'server.name', /printable/);
    refuses(() => server('vm\u0085'), 'server.name', /control characters/);
    refuses(() => server('vm\ud800'), 'server.name', /well-formed/);
  });
});
