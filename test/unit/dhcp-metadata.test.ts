/**
 * Isolated metadata in the DHCP agent's pure code: dnsmasq's option 121/249 (golden file
 * test/golden/dnsmasq/opts-metadata; `KUMO_UPDATE_GOLDEN=1` rewrites it), which subnets get
 * the metadata route and through which address, the desired proxy, and the plan's order:
 * haproxy starts only once the tap holds 169.254.169.254/32 and stops before the address
 * or the namespace goes; the metadata address never restarts dnsmasq; a converged host
 * plans nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';
import { dhcpSettings } from '../../agents/dhcp/agent.ts';
import { type DesiredDhcp, type DhcpSettings, desiredDhcp } from '../../agents/dhcp/desired.ts';
import { dhcpRelaySocket } from '../../agents/dhcp/metadata.ts';
import type { ObservedDhcp } from '../../agents/dhcp/observe.ts';
import { planDhcp } from '../../agents/dhcp/plan.ts';
import { configDigest, proxyConfig } from '../../agents/lib/metadata-proxy.ts';
import type { Step } from '../../agents/lib/steps.ts';
import type { DhcpNetwork, DhcpSubnet } from '../../contracts/dhcp.ts';
import { compileConfig } from '../../core/config.ts';
import { renderFiles } from '../../host/dnsmasq/render.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'dnsmasq');
const NET = '11111111-1111-4111-8111-111111111111';
const ISO = '22222222-2222-4222-8222-222222222222';
const ROUTED = '33333333-3333-4333-8333-333333333333';
const V6 = '44444444-4444-4444-8444-444444444444';
const DHCP_PORT = '55555555-5555-4555-8555-555555555555';
const SOCKET = '/var/lib/kumo/dhcp/metadata_proxy';
const OFF: DhcpSettings = {
  stateRoot: '/var/lib/kumo/dhcp',
  leaseSeconds: 86400,
  intBridge: 'br-int',
  netnsPrefix: '',
};
const ON: DhcpSettings = { ...OFF, metadataSocket: SOCKET };
const STATE = `/var/lib/kumo/dhcp/${NET}`;
const PROXY_DIR = `${STATE}/metadata-proxy`;

function golden(name: string, actual: string) {
  const path = join(GOLDEN, name);
  if (process.env.KUMO_UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden file ${name}`);
}

const subnet = (id: string, cidr: string, more: Partial<DhcpSubnet> = {}): DhcpSubnet => ({
  id,
  cidr,
  ip_version: cidr.includes(':') ? '6' : '4',
  gateway_ip: cidr.includes(':') ? null : cidr.replace(/0\/24$/, '1'),
  enable_dhcp: true,
  dns_nameservers: [],
  host_routes: [],
  routed: false,
  ...more,
});

/** An isolated IPv4 subnet with a host route, a routed one, and an IPv6 one. */
function sample(): DhcpNetwork {
  const dhcp = {
    id: DHCP_PORT,
    mac_address: 'fa:16:3e:00:00:02',
    device_owner: 'network:dhcp',
    fixed_ips: [
      { subnet_id: ISO, ip_address: '10.0.0.2' },
      { subnet_id: ROUTED, ip_address: '10.1.0.2' },
      { subnet_id: V6, ip_address: '2001:db8::2' },
    ],
  };
  return {
    id: NET,
    revision_number: 1,
    mtu: 1450,
    subnets: [
      subnet(ISO, '10.0.0.0/24', {
        host_routes: [{ destination: '192.168.0.0/16', nexthop: '10.0.0.254' }],
      }),
      subnet(ROUTED, '10.1.0.0/24', { routed: true }),
      subnet(V6, '2001:db8::/64'),
    ],
    ports: [dhcp],
    dhcp_port: dhcp,
  };
}

const lineOf = (opts: string, id: string, option: string) =>
  opts.split('\n').find((l) => l.startsWith(`tag:subnet-${id},${option},`));

describe('dnsmasq options for isolated metadata', () => {
  test('an isolated IPv4 subnet routes 169.254.169.254/32 through the DHCP port (golden)', () => {
    const opts = renderFiles(sample(), { isolatedMetadata: true }).opts;
    golden('opts-metadata', opts);
    const routes = '192.168.0.0/16,10.0.0.254,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1';
    assert.equal(
      lineOf(opts, ISO, 'option:classless-static-route'),
      `tag:subnet-${ISO},option:classless-static-route,${routes}`,
    );
    assert.equal(lineOf(opts, ISO, '249'), `tag:subnet-${ISO},249,${routes}`);
    assert.equal(lineOf(opts, ISO, 'option:router'), `tag:subnet-${ISO},option:router,10.0.0.1`);
  });

  test('routed and IPv6 subnets get no metadata route; with the option off, none does', () => {
    const on = renderFiles(sample(), { isolatedMetadata: true }).opts;
    assert.equal(lineOf(on, ROUTED, 'option:classless-static-route'), undefined);
    assert.ok(on.split('\n').some((l) => l === `tag:subnet-${ROUTED},option:router,10.1.0.1`));
    assert.doesNotMatch(
      on
        .split('\n')
        .filter((l) => l.includes(V6))
        .join('\n'),
      /169\.254/,
    );
    const off = renderFiles(sample()).opts;
    assert.doesNotMatch(off, /169\.254/);
    assert.deepEqual(
      off.replace(/169\.254\.169\.254\/32,10\.0\.0\.2,/g, ''),
      on.replace(/169\.254\.169\.254\/32,10\.0\.0\.2,/g, ''),
      'the metadata route is the only difference',
    );
  });

  test('no gateway: the metadata route alone; no DHCP address there: no route', () => {
    const n = sample();
    const iso = n.subnets[0] as DhcpSubnet;
    iso.gateway_ip = null;
    iso.host_routes = [];
    const opts = renderFiles(n, { isolatedMetadata: true }).opts;
    assert.equal(
      lineOf(opts, ISO, 'option:classless-static-route'),
      `tag:subnet-${ISO},option:classless-static-route,169.254.169.254/32,10.0.0.2`,
    );
    assert.ok(opts.includes(`tag:subnet-${ISO},option:router\n`));
    n.dhcp_port = { ...(n.dhcp_port as DhcpNetwork['ports'][number]), fixed_ips: [] };
    assert.doesNotMatch(renderFiles(n, { isolatedMetadata: true }).opts, /169\.254/);
  });

  test('a host route of the user to 169.254.169.254/32 is kept, and not doubled', () => {
    const n = sample();
    (n.subnets[0] as DhcpSubnet).host_routes = [
      { destination: '169.254.169.254/32', nexthop: '10.0.0.9' },
    ];
    const line = lineOf(
      renderFiles(n, { isolatedMetadata: true }).opts,
      ISO,
      'option:classless-static-route',
    );
    assert.equal(
      line,
      `tag:subnet-${ISO},option:classless-static-route,169.254.169.254/32,10.0.0.9,0.0.0.0/0,10.0.0.1`,
    );
  });
});

describe('desired metadata proxy', () => {
  test('on, with an isolated subnet: haproxy on 169.254.169.254:80 with the network id', () => {
    const d = desiredDhcp(sample(), ON) as DesiredDhcp;
    assert.deepEqual(d.metadata, {
      netns: `qdhcp-${NET}`,
      dir: PROXY_DIR,
      bind: { address: '169.254.169.254', port: 80 },
      header: { name: 'X-Kumo-Network-ID', value: NET },
      socket: SOCKET,
    });
    assert.deepEqual(
      d.addresses,
      ['10.0.0.2/24', '10.1.0.2/24', '2001:db8::2/64'],
      'dnsmasq’s addresses only',
    );
    assert.match(d.files.opts, /169\.254\.169\.254\/32,10\.0\.0\.2/);
  });

  test('off, or every IPv4 subnet routed: no proxy and no metadata route', () => {
    assert.equal((desiredDhcp(sample(), OFF) as DesiredDhcp).metadata, null);
    const routed = sample();
    (routed.subnets[0] as DhcpSubnet).routed = true;
    const d = desiredDhcp(routed, ON) as DesiredDhcp;
    assert.equal(d.metadata, null);
    assert.doesNotMatch(d.files.opts, /169\.254/);
  });
});

/** The host as it is once `d` was applied (dnsmasq running, the proxy as given). */
function matching(d: DesiredDhcp, proxy: 'running' | 'none'): ObservedDhcp {
  const cidrs = [...d.addresses, ...(proxy === 'running' ? ['169.254.169.254/32'] : [])];
  const addrs = cidrs.map((cidr) => ({
    version: cidr.includes(':') ? (6 as const) : (4 as const),
    address: cidr.split('/')[0] as string,
    prefix: Number(cidr.split('/')[1]),
    cidr,
    scope: 'global',
  }));
  const spec = d.metadata ?? desiredDhcp(sample(), ON)?.metadata;
  assert.ok(spec);
  return {
    netnsExists: true,
    links: [
      { name: d.device, ifindex: 5, mac: d.mac, mtu: d.mtu, up: true, peer: undefined, addrs },
    ],
    ovsPorts: [
      {
        uuid: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
        name: d.device,
        bridge: 'br-int',
        ifaceId: DHCP_PORT,
        attachedMac: d.mac,
        vmUuid: null,
      },
    ],
    files: { ...d.files },
    leases: null,
    pid: 4242,
    argv: [...d.argv],
    stateDirExists: true,
    servedDigest: d.digest,
    proxy:
      proxy === 'running'
        ? {
            dir: PROXY_DIR,
            dirExists: true,
            config: proxyConfig(spec),
            loaded: configDigest(proxyConfig(spec)),
            pid: 77,
            inNetns: true,
          }
        : {
            dir: PROXY_DIR,
            dirExists: false,
            config: null,
            loaded: null,
            pid: null,
            inNetns: false,
          },
  };
}

function show(st: Step): string {
  switch (st.kind) {
    case 'command':
      return [
        st.spec.argv.join(' '),
        String(st.spec.stdin ?? '')
          .trim()
          .replace(/\n/g, '; '),
      ]
        .filter(Boolean)
        .join(' <<< ');
    case 'daemon':
      return `${basename(st.daemon.pidfile)} ${st.action}`;
    case 'signal':
      return `${basename(st.daemon.pidfile)} ${st.signal}`;
    case 'file':
    case 'mkdir':
    case 'remove':
      return `${st.kind} ${st.path.replace(STATE, '<state>')}`;
    default:
      return st.kind;
  }
}
const plan = (d: DesiredDhcp | null, o: ObservedDhcp) => planDhcp(d, o, ON, NET).map(show);

describe('planning the metadata proxy', () => {
  const on = desiredDhcp(sample(), ON) as DesiredDhcp;
  const routed = sample();
  (routed.subnets[0] as DhcpSubnet).routed = true;
  const off = desiredDhcp(routed, ON) as DesiredDhcp;

  test('converged: nothing to do', () => {
    assert.deepEqual(plan(on, matching(on, 'running')), []);
    assert.deepEqual(plan(off, matching(off, 'none')), []);
  });

  test('turned on: the address first, then the files and haproxy; dnsmasq only reloads', () => {
    const steps = plan(on, { ...matching(off, 'none'), servedDigest: off.digest });
    assert.deepEqual(steps, [
      `ip -n qdhcp-${NET} -batch - <<< addr replace 169.254.169.254/32 dev ${on.device}`,
      'file <state>/opts',
      'pid SIGHUP',
      'file <state>/served',
      'mkdir <state>/metadata-proxy',
      'file <state>/metadata-proxy/haproxy.cfg',
      'haproxy -c -f /var/lib/kumo/dhcp/11111111-1111-4111-8111-111111111111/metadata-proxy/haproxy.cfg',
      'haproxy.pid start',
      'file <state>/metadata-proxy/haproxy.loaded',
    ]);
  });

  test('a router arrives: haproxy stops before the address goes; dnsmasq only reloads', () => {
    assert.deepEqual(plan(off, matching(on, 'running')), [
      'haproxy.pid stop',
      'remove <state>/metadata-proxy',
      `ip -n qdhcp-${NET} -batch - <<< addr del 169.254.169.254/32 dev ${on.device}`,
      'file <state>/opts',
      'pid SIGHUP',
      'file <state>/served',
    ]);
  });

  test('network removed: dnsmasq and haproxy stop before the namespace goes, then the state', () => {
    const steps = plan(null, matching(on, 'running'));
    assert.deepEqual(steps, [
      'pid stop',
      'haproxy.pid stop',
      'remove <state>/metadata-proxy',
      'ovsdb',
      `ip netns del qdhcp-${NET}`,
      'remove <state>',
    ]);
  });
});

describe('isolated metadata settings', () => {
  const conf = (...lines: string[]) => compileConfig(`${lines.join('\n')}\n`);
  const secret = ['[metadata]', 'metadata_proxy_shared_secret = s3cret-s3cret'];

  test('on only with enable_isolated_metadata and the shared secret', () => {
    const on = conf('[DEFAULT]', 'state_path = /srv/kumo', ...secret);
    assert.equal(dhcpRelaySocket(on, '/srv/kumo/dhcp'), '/srv/kumo/dhcp/metadata_proxy');
    assert.equal(dhcpSettings(on).metadataSocket, '/srv/kumo/dhcp/metadata_proxy');
    const noSecret = conf('[dhcp]', 'enable_isolated_metadata = true');
    assert.equal(dhcpRelaySocket(noSecret, '/x'), undefined);
    assert.equal(dhcpSettings(noSecret).metadataSocket, undefined);
    const disabled = conf('[dhcp]', 'enable_isolated_metadata = false', ...secret);
    assert.equal(dhcpRelaySocket(disabled, '/x'), undefined);
    assert.equal(dhcpSettings(disabled).metadataSocket, undefined);
    assert.equal(desiredDhcp(sample(), dhcpSettings(disabled))?.metadata, null);
  });
});
