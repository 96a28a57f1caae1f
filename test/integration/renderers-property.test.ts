/**
 * Property: nothing kumo-api accepts makes an agent's renderer throw or leave it out.
 *
 * Random networks (MTUs from 68 up, set on create and update), subnets (every CIDR prefix
 * and special range, nameservers, routes, gateways and pools in every spelling) and ports (fixed IPs anywhere, any device owner,
 * names in any Unicode) are sent to the real API (buildApp, sqlite, a real broker); what
 * it accepts is read back the way get_network_info serves it (the API's own dhcpNetworkOf)
 * through the wire (JSON) and the agent's contract, then rendered: dnsmasq's files and
 * argv, and the DHCP plan (the namespace port's `ip -batch`, the OVS port). Each must
 * succeed with nothing left out. The seed is printed; KUMO_PROPERTY_SEED replays it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type DesiredDhcp, type DhcpSettings, desiredDhcp } from '../../agents/dhcp/desired.ts';
import type { ObservedDhcp } from '../../agents/dhcp/observe.ts';
import { planDhcp } from '../../agents/dhcp/plan.ts';
import type { Db } from '../../api/db/index.ts';
import { getNetwork } from '../../api/db/networks.ts';
import { listPorts } from '../../api/db/ports.ts';
import { listSubnets } from '../../api/db/subnets.ts';
import { dhcpNetworkOf } from '../../api/rpc-dhcp.ts';
import { parseNetworkInfo } from '../../contracts/dhcp.ts';
import { parseIp } from '../../contracts/inet.ts';
import type { Network, Subnet } from '../../contracts/network.ts';
import {
  cidrOf,
  DEVICE_OWNERS,
  ipIn,
  ipText,
  mac,
  name,
  type Rng,
  rng,
} from '../helpers/api-values.ts';
import { type PropertyApi, startPropertyApi } from '../helpers/property-api.ts';

const ADMIN = 'admin-token-property';
const HOST = 'prop-host';
const NETWORKS = 60;
const S: DhcpSettings = {
  stateRoot: '/var/lib/kumo/dhcp',
  leaseSeconds: 86400,
  intBridge: 'br-int',
  netnsPrefix: '',
};
const NOTHING: ObservedDhcp = {
  netnsExists: false,
  links: [],
  ovsPorts: [],
  files: null,
  leases: null,
  pid: null,
  argv: null,
  stateDirExists: false,
  servedDigest: null,
  proxy: {
    dir: '/var/lib/kumo/dhcp/x/metadata-proxy',
    dirExists: false,
    config: null,
    loaded: null,
    pid: null,
    inNetns: false,
  },
};

function subnetBody(r: Rng, networkId: string) {
  const version = r.chance(0.6) ? 4 : 6;
  const c = cidrOf(r, version);
  const other = version === 4 ? 6 : 4;
  const anyIp = () => (r.chance(0.95) ? ipIn(r, version, c.network, c.prefix) : ipText(r, other));
  const body: Record<string, unknown> = {
    network_id: networkId,
    cidr: c.text,
    ip_version: version,
  };
  if (r.chance(0.5)) body.name = name(r);
  if (r.chance(0.3)) body.gateway_ip = r.chance(0.2) ? null : anyIp();
  if (r.chance(0.3)) body.enable_dhcp = r.chance(0.8);
  if (r.chance(0.6))
    body.dns_nameservers = Array.from({ length: r.int(1, 4) }, () =>
      r.chance(0.95) ? ipText(r, version) : ipText(r, other),
    );
  if (r.chance(0.4))
    body.host_routes = Array.from({ length: r.int(1, 3) }, () => ({
      destination: cidrOf(r, r.chance(0.9) ? version : other).text,
      nexthop: anyIp(),
    }));
  if (r.chance(0.1)) body.allocation_pools = [{ start: anyIp(), end: anyIp() }];
  return body;
}

function portBody(r: Rng, networkId: string, subnets: readonly Subnet[]) {
  const body: Record<string, unknown> = { network_id: networkId };
  if (r.chance(0.5)) body.name = name(r);
  if (r.chance(0.3)) body.mac_address = mac(r);
  if (r.chance(0.5)) body.device_owner = r.pick(DEVICE_OWNERS);
  if (subnets.length && r.chance(0.6))
    body.fixed_ips = Array.from({ length: r.int(1, 2) }, () => {
      const s = r.pick(subnets);
      if (r.chance(0.2)) return { subnet_id: s.id };
      const [net = '', prefix] = s.cidr.split('/');
      const address = r.chance(0.9)
        ? ipIn(r, s.ip_version, parseIp(net)?.value ?? 0n, Number(prefix))
        : ipText(r, r.chance(0.5) ? 4 : 6);
      return { subnet_id: s.id, ip_address: address };
    });
  return body;
}

describe('property: what the API accepts, the DHCP renderers serve whole', {
  timeout: 240_000,
}, () => {
  const r = rng();
  let api: PropertyApi;
  let db: Db;
  let app: FastifyInstance;
  const accepted = { subnets: 0, ports: 0, updates: 0, refused: 0 };

  before(async () => {
    api = await startPropertyApi(() => ({
      adminToken: ADMIN,
      memberTokens: [],
      agentDownTime: 30,
      bodyLimit: 1 << 20,
      network: {
        tenantNetworkTypes: ['vxlan'],
        vniRanges: [[1, 5000]],
        greIdRanges: [[10, 12]],
        flatNetworks: ['physnet1'],
        globalPhysnetMtu: 1500,
      },
    }));
    ({ db, app } = api);
  });
  after(() => api.close());

  const call = async (method: 'POST' | 'PUT', url: string, payload: Record<string, unknown>) => {
    const res = await app.inject({ method, url, payload, headers: { 'x-auth-token': ADMIN } });
    assert.ok(res.statusCode < 500, `${method} ${url} ${JSON.stringify(payload)} → ${res.body}`);
    if (res.statusCode >= 300) accepted.refused++;
    return res.statusCode < 300 ? (res.json() as Record<string, unknown>) : undefined;
  };

  async function populate(networkId: string) {
    const subnets: Subnet[] = [];
    for (let i = r.int(1, 4); i > 0; i--) {
      const made = await call('POST', '/v2.0/subnets', { subnet: subnetBody(r, networkId) });
      if (made) subnets.push(made.subnet as Subnet);
    }
    for (const s of subnets) {
      if (!r.chance(0.4)) continue;
      const { network_id: _, cidr: __, ip_version: ___, ...update } = subnetBody(r, networkId);
      if (await call('PUT', `/v2.0/subnets/${s.id}`, { subnet: update })) accepted.updates++;
    }
    accepted.subnets += subnets.length;
    if (r.chance(0.2)) {
      const mtu = r.pick([68, 1000, 1279, 1280, 1450]);
      if (await call('PUT', `/v2.0/networks/${networkId}`, { network: { mtu } }))
        accepted.updates++;
    }
    const dhcp = { network_id: networkId, device_owner: 'network:dhcp', 'binding:host_id': HOST };
    await call('POST', '/v2.0/ports', { port: dhcp });
    for (let i = r.int(0, 6); i > 0; i--)
      if (await call('POST', '/v2.0/ports', { port: portBody(r, networkId, subnets) }))
        accepted.ports++;
  }

  /** The network as get_network_info answers it, through the wire and the contract. */
  async function served(networkId: string) {
    const network = (await getNetwork(db, networkId)) as Network;
    const filter = { columns: { network_id: [networkId] }, clauses: [] };
    const answer = dhcpNetworkOf(
      network,
      await listSubnets(db, filter),
      await listPorts(db, filter),
      HOST,
    );
    return parseNetworkInfo(JSON.parse(JSON.stringify({ network: answer })));
  }

  test(`${NETWORKS} random networks render whole (seed printed)`, async (t) => {
    t.diagnostic(`seed ${r.seed} (KUMO_PROPERTY_SEED=${r.seed} replays it)`);
    let rendered = 0;
    for (let i = 0; i < NETWORKS; i++) {
      const network: Record<string, unknown> = { name: name(r) };
      if (r.chance(0.3)) network.mtu = r.pick([68, 576, 1279, 1280, 1400, 1450]);
      const made = await call('POST', '/v2.0/networks', { network });
      const networkId = (made?.network as Network | undefined)?.id;
      if (!networkId) continue;
      await populate(networkId);
      const info = await served(networkId);
      const where = `seed ${r.seed}, network ${JSON.stringify(info.network)}`;
      assert.deepEqual(info.rejected, [], `the contract left nothing out: ${where}`);
      let desired: DesiredDhcp | null = null;
      assert.doesNotThrow(() => {
        desired = desiredDhcp(info.network, S, info.rejected);
      }, where);
      if (desired === null) continue;
      const d = desired as DesiredDhcp;
      assert.deepEqual(d.rejected, [], `the renderer left nothing out: ${where}`);
      assert.doesNotThrow(() => planDhcp(d, NOTHING, S, networkId), where);
      rendered++;
    }
    t.diagnostic(`accepted ${JSON.stringify(accepted)}, rendered ${rendered} networks`);
    assert.ok(
      accepted.subnets >= NETWORKS / 4,
      `enough accepted subnets: ${JSON.stringify(accepted)}`,
    );
    assert.ok(accepted.ports >= NETWORKS / 2, `enough accepted ports: ${JSON.stringify(accepted)}`);
    assert.ok(rendered >= NETWORKS / 6, `enough rendered networks (${rendered})`);
  });
});
