/**
 * kumo-dhcp-agent on a lab host with real dnsmasq and busybox udhcpc clients: a client
 * gets exactly its allocated address, gateway and DNS; a changed IP is handed out on the
 * next renewal; a deleted port gets no lease.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { Cluster, ovsOf } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';

describe('kumo-dhcp-agent on a lab host', { timeout: 300_000 }, () => {
  let lab: Lab;
  let c: Cluster;
  let net: Network;
  let script: string;
  let port: Port;
  let ep: Endpoint;

  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  /** One DHCP exchange; resolves with what udhcpc's script saw. */
  const lease = async (e: Endpoint) => {
    const argv = [
      'busybox',
      'udhcpc',
      '-i',
      e.name,
      '-n',
      '-q',
      '-f',
      '-t',
      '4',
      '-T',
      '1',
      '-s',
      script,
    ];
    const out = await lab.exec(e.netns, argv);
    const line = out.split('\n').find((l) => l.startsWith('bound ')) ?? '';
    return Object.fromEntries(
      line
        .slice(6)
        .split(' ')
        .map((kv) => kv.split('=') as [string, string]),
    );
  };

  before(async () => {
    lab = await createLab({ hosts: 1 });
    const host = lab.hosts[0] as LabHost;
    c = await Cluster.create('sqlite', ovsOf(host));
    script = join(c.dir.path, 'udhcpc.sh');
    writeFileSync(
      script,
      '#!/bin/sh\n[ "$1" = bound ] && echo "bound ip=$ip router=$router dns=$dns"\nexit 0\n',
    );
    chmodSync(script, 0o755);
    await c.startApi();
    c.startAgent('ovs');
    c.startAgent('dhcp');
    await waitFor('the DHCP agent alive', async () => {
      const res = await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent&alive=true');
      return (res.body as { agents: Agent[] }).agents.length === 1;
    });
    net = await post<Network>('/v2.0/networks', 'network', { name: 'dhcp-net' });
    await post('/v2.0/subnets', 'subnet', {
      network_id: net.id,
      cidr: '10.20.0.0/24',
      ip_version: 4,
      dns_nameservers: ['10.20.0.53'],
    });
    port = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
    ep = await lab.endpoint(host, { ifaceId: port.id, mac: port.mac_address });
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('a client gets exactly its address, gateway and DNS from the qdhcp dnsmasq', async () => {
    const got = await waitFor('a lease', () => lease(ep).catch(() => undefined), 40_000, 500);
    assert.equal(got.ip, port.fixed_ips[0]?.ip_address);
    assert.equal(got.router, '10.20.0.1');
    assert.equal(got.dns, '10.20.0.53');
    const dhcpPorts = (
      await c.http('GET', `/v2.0/ports?network_id=${net.id}&device_owner=network:dhcp`)
    ).body as { ports: Port[] };
    assert.equal(dhcpPorts.ports.length, 1);
    assert.equal(dhcpPorts.ports[0]?.status, 'ACTIVE', 'the L2 agent bound the DHCP port');
  });

  test('a changed IP is handed out on the next renewal; a deleted port gets no lease', async () => {
    const subnet = port.fixed_ips[0]?.subnet_id;
    const res = await c.http('PUT', `/v2.0/ports/${port.id}`, {
      port: { fixed_ips: [{ subnet_id: subnet, ip_address: '10.20.0.77' }] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await waitFor(
      'the new address',
      async () => (await lease(ep).catch(() => ({ ip: '' }))).ip === '10.20.0.77',
      30_000,
      500,
    );
    assert.equal((await c.http('DELETE', `/v2.0/ports/${port.id}`)).status, 204);
    await waitFor(
      'no lease any more',
      async () =>
        (await lease(ep).then(
          () => 'leased',
          () => 'refused',
        )) === 'refused',
      30_000,
      500,
    );
  });
});
