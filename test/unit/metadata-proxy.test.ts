/**
 * The metadata proxy kit and the L3 router's metadata, pure: haproxy.cfg rendered from a
 * ProxySpec (golden), every bad value refused with a ValidationError naming its field before
 * anything renders; proxySteps for each observed state (nothing, running right, changed,
 * another namespace, stopped, teardown); the router's desired state with metadata on (the
 * proxy spec and Neutron's redirect / mark / INPUT rules in our chains, in iptables-save
 * spelling) and off (neither); the router's teardown stopping haproxy before the namespace.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { desiredRouter } from '../../agents/l3/desired.ts';
import type { ObservedRouter } from '../../agents/l3/observe.ts';
import { emptyIptables } from '../../agents/l3/observe.ts';
import { planRouter } from '../../agents/l3/plan.ts';
import {
  configDigest,
  type ObservedProxy,
  type ProxySpec,
  proxyConfig,
  proxySteps,
} from '../../agents/lib/metadata-proxy.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { renderConfig } from '../../host/haproxy/config.ts';
import { ID, NS, routerOf, S } from '../helpers/l3-agent-kit.ts';

const SPEC: ProxySpec = {
  netns: 'qrouter-x',
  dir: '/var/lib/kumo/l3/r1/metadata-proxy',
  bind: { address: '0.0.0.0', port: 9697 },
  header: { name: 'X-Kumo-Router-ID', value: '11111111-1111-4111-8111-111111111111' },
  socket: '/var/lib/kumo/l3/metadata_proxy',
};

const GOLDEN = `global
    maxconn 1024

defaults
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s

listen metadata
    mode http
    bind 0.0.0.0:9697
    http-request del-header x-kumo-router-id
    http-request del-header x-kumo-network-id
    http-request del-header x-forwarded-for
    http-request del-header x-instance-id
    http-request del-header x-tenant-id
    http-request del-header x-instance-id-signature
    http-request del-header Forwarded
    http-request del-header X-Forwarded- -m beg
    http-request del-header X-Kumo- -m beg
    http-request del-header X-Instance-ID -m beg
    http-request del-header X-Tenant-ID -m beg
    http-request del-header X-Metadata-Provider -m beg
    http-request set-header X-Kumo-Router-ID 11111111-1111-4111-8111-111111111111
    http-request set-header X-Forwarded-For %[src]
    server relay unix@/var/lib/kumo/l3/metadata_proxy
`;

const observed = (o: Partial<ObservedProxy> = {}): ObservedProxy => ({
  dir: SPEC.dir,
  dirExists: true,
  config: proxyConfig(SPEC),
  loaded: configDigest(proxyConfig(SPEC)),
  pid: 4242,
  inNetns: true,
  ...o,
});

const refused = (field: string, run: () => unknown) =>
  assert.throws(run, (e: unknown) => e instanceof ValidationError && e.message.includes(field));

describe('haproxy config', () => {
  test('the metadata proxy renders as the golden file', () => {
    assert.equal(proxyConfig(SPEC), GOLDEN);
  });

  test('every bad value is refused, naming its field', () => {
    refused('header.value', () =>
      proxyConfig({ ...SPEC, header: { ...SPEC.header, value: 'x\nbind' } }),
    );
    refused('header.name', () =>
      proxyConfig({
        ...SPEC,
        header: { name: 'Host' as 'X-Kumo-Router-ID', value: SPEC.header.value },
      }),
    );
    refused('servers[0].address.unix', () => proxyConfig({ ...SPEC, socket: '/tmp/a b' }));
    refused('servers[0].address.unix', () => proxyConfig({ ...SPEC, socket: 'relative/sock' }));
    refused('servers[0].address.unix', () => proxyConfig({ ...SPEC, socket: '/tmp/../etc/x' }));
    refused('bind.address', () =>
      proxyConfig({ ...SPEC, bind: { address: '010.0.0.1', port: 80 } }),
    );
    refused('bind.port', () => proxyConfig({ ...SPEC, bind: { address: '0.0.0.0', port: 0 } }));
    const base = { maxconn: 10, timeouts: { connect: 1, client: 1, server: 1, httpRequest: 1 } };
    const listen = {
      name: 'l',
      mode: 'http' as const,
      bind: { address: '::1', port: 80 },
      servers: [],
    };
    refused('listens[0].httpRequest[0].value', () =>
      renderConfig({
        ...base,
        listens: [
          {
            ...listen,
            httpRequest: [{ action: 'set-header', name: 'A', value: { literal: '%[req.hdr(x)]' } }],
          },
        ],
      }),
    );
    refused('listens[0].name', () =>
      renderConfig({ ...base, listens: [{ ...listen, name: 'a b', httpRequest: [] }] }),
    );
    refused('maxconn', () => renderConfig({ ...base, maxconn: 0, listens: [] }));
    assert.match(
      renderConfig({ ...base, listens: [{ ...listen, httpRequest: [] }] }),
      /bind \[::1\]:80/,
    );
  });
});

describe('proxySteps', () => {
  const kinds = (steps: { kind: string; why: string }[]) => steps.map((s) => `${s.kind}: ${s.why}`);

  test('nothing there: dir, config, check, start', () => {
    const steps = proxySteps(
      SPEC,
      observed({ dirExists: false, config: null, pid: null, inNetns: false }),
    );
    assert.deepEqual(kinds(steps), [
      'mkdir: metadata proxy',
      'file: haproxy.cfg',
      'command: haproxy -c',
      'daemon: start the metadata proxy',
      'file: the config haproxy started with',
    ]);
    assert.deepEqual(steps[4], {
      kind: 'file',
      path: `${SPEC.dir}/haproxy.loaded`,
      content: configDigest(proxyConfig(SPEC)),
      why: 'the config haproxy started with',
    });
    const start = steps[3];
    assert.ok(start?.kind === 'daemon' && start.action === 'start');
    assert.deepEqual(start.spec, {
      argv: ['haproxy', '-f', `${SPEC.dir}/haproxy.cfg`, '-p', `${SPEC.dir}/haproxy.pid`, '-D'],
      netns: SPEC.netns,
    });
  });

  test('running with the right config in the right namespace: nothing (adopted)', () => {
    assert.deepEqual(proxySteps(SPEC, observed()), []);
  });

  test('a changed config: write, check, hitless reload of the old pid', () => {
    const steps = proxySteps(SPEC, observed({ config: 'old' }));
    assert.deepEqual(kinds(steps), [
      'file: haproxy.cfg',
      'command: haproxy -c',
      'command: reload the metadata proxy',
      'file: the config haproxy reloaded',
    ]);
    const reload = steps[2];
    assert.ok(reload?.kind === 'command');
    assert.deepEqual(reload.spec.argv.slice(-2), ['-sf', '4242']);
  });

  test('another namespace: reload from the right one; stopped: start', () => {
    assert.deepEqual(kinds(proxySteps(SPEC, observed({ inNetns: false }))), [
      'command: haproxy -c',
      'command: metadata proxy in a stale namespace',
      'file: the config haproxy reloaded',
    ]);
    assert.deepEqual(kinds(proxySteps(SPEC, observed({ pid: null, inNetns: false }))), [
      'command: haproxy -c',
      'daemon: start the metadata proxy',
      'file: the config haproxy started with',
    ]);
  });

  test('config written but the agent died before the reload: the stale digest is checked, reloaded', () => {
    for (const loaded of [configDigest('old'), null])
      assert.deepEqual(kinds(proxySteps(SPEC, observed({ loaded }))), [
        'command: haproxy -c',
        'command: reload the metadata proxy',
        'file: the config haproxy reloaded',
      ]);
  });

  test('null: stop, remove; nothing left: nothing', () => {
    assert.deepEqual(kinds(proxySteps(null, observed())), [
      'daemon: stop the metadata proxy',
      'remove: metadata proxy files',
    ]);
    assert.deepEqual(proxySteps(null, observed({ dirExists: false, config: null, pid: null })), []);
  });
});

describe('a router’s metadata (L3)', () => {
  const SOCKET = '/var/lib/kumo/l3/metadata_proxy';

  test('metadata on: the proxy spec, and redirect, mark and INPUT rules in our chains', () => {
    const d = desiredRouter(routerOf(ID), { ...S, metadataSocket: SOCKET });
    assert.deepEqual(d?.metadataProxy, {
      netns: NS,
      dir: `${S.stateRoot}/${ID}/metadata-proxy`,
      bind: { address: '0.0.0.0', port: 9697 },
      header: { name: 'X-Kumo-Router-ID', value: ID },
      socket: SOCKET,
    });
    const chain = (t: 'nat' | 'mangle' | 'filter', c: string) =>
      d?.iptables.tables
        .get(t)
        ?.chains.get(c)
        ?.map((r) => r.join(' '));
    assert.equal(
      chain('nat', 'kumo-l3-PREROUTING')?.[0],
      '-d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
    );
    assert.deepEqual(chain('mangle', 'kumo-l3-PREROUTING'), [
      '-d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x1/0xffff',
    ]);
    assert.deepEqual(chain('filter', 'kumo-l3-INPUT'), [
      '-p tcp -m tcp --dport 9697 -m mark --mark 0x1/0xffff -j ACCEPT',
      '-p tcp -m tcp --dport 9697 -j DROP',
    ]);
    const off = desiredRouter(routerOf(ID), S);
    assert.equal(off?.metadataProxy, null);
    assert.equal(off?.iptables.tables.get('mangle'), undefined);
    assert.ok(
      !off?.iptables.tables
        .get('nat')
        ?.chains.get('kumo-l3-PREROUTING')
        ?.some((r) => r.includes('REDIRECT')),
    );
  });

  test('a router removed: haproxy stops before the namespace goes, files go with the state', () => {
    const o: ObservedRouter = {
      stateDirExists: true,
      owned: true,
      netnsExists: true,
      links: [],
      ovsPorts: [],
      routes: [],
      ipForward: null,
      iptables: emptyIptables(),
      metadataProxy: observed({ dir: `${S.stateRoot}/${ID}/metadata-proxy` }),
    };
    const steps = planRouter(null, o, S, { netns: NS, stateDir: `${S.stateRoot}/${ID}` });
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['daemon', 'command', 'remove'],
    );
    assert.deepEqual(steps[1]?.kind === 'command' && steps[1].spec.argv, [
      'ip',
      'netns',
      'del',
      NS,
    ]);
  });
});
