/**
 * bench/l3-resync's topology through kumo-api (not timed): one flat external network on
 * physnet `public` (100.64.0.0/22, RFC 6598 shared space: 600 gateway and floating
 * addresses do not fit a /24 documentation range; it exists only in the lab's
 * namespaces), two shared vxlan tenant networks, and per router two /24 subnets of its
 * own (one on each shared network: Neutron puts a router's interface on the subnet's
 * gateway, so no two routers share a subnet), a gateway, both interfaces, and two
 * floating IPs on ports at .5 of each subnet.
 *
 * Invariant: every router's expected host state (devices, MACs, MTUs, addresses, NAT
 * pairs) is read back from the API, so the bench's checks and the baseline script work
 * from what the API says, never from what the agent did.
 */
import type { Network, Port, Subnet } from '../contracts/network.ts';
import { portDevice } from '../host/ip/names.ts';
import type { Cluster } from '../test/helpers/cluster.ts';

export const EXT_CIDR = '100.64.0.0/22';
export const EXT_GATEWAY = '100.64.0.1';
const EXT_PREFIX = 22;

export interface RouterPort {
  device: string;
  portId: string;
  mac: string;
  mtu: number;
  /** CIDRs on the device. */
  addresses: string[];
}

export interface BenchRouter {
  index: number;
  id: string;
  /** The qrouter namespace (with the lab host's netns_prefix). */
  netns: string;
  /** qr-A, qr-B, qg-. */
  ports: RouterPort[];
  qg: string;
  gatewayIp: string;
  fips: { floatingIp: string; fixedIp: string; portId: string; mac: string }[];
}

type Http = Cluster['http'];

async function post<T>(http: Http, path: string, key: string, body: unknown): Promise<T> {
  const res = await http('POST', path, { [key]: body });
  if (res.status !== 201)
    throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

async function put(http: Http, path: string, body: unknown): Promise<void> {
  const res = await http('PUT', path, body);
  if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${JSON.stringify(res.body)}`);
}

async function list<T>(http: Http, path: string, key: string): Promise<T[]> {
  const res = await http('GET', path);
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
  return (res.body as Record<string, T[]>)[key] as T[];
}

/** Runs `fn` over `items`, `width` at a time. */
export async function inBatches<T>(
  items: readonly T[],
  width: number,
  fn: (x: T) => Promise<void>,
) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

const subnetCidr = (side: 0 | 1, i: number) => `10.${100 + side * 20 + (i >> 8)}.${i & 255}.0/24`;
const hostIp = (cidr: string, last: number) => cidr.replace(/\.0\/24$/, `.${last}`);

interface Shared {
  pub: string;
  nets: [string, string];
}

async function sharedNetworks(http: Http): Promise<Shared> {
  const pub = await post<Network>(http, '/v2.0/networks', 'network', {
    name: 'l3-resync-public',
    'router:external': true,
    'provider:network_type': 'flat',
    'provider:physical_network': 'public',
  });
  await post<Subnet>(http, '/v2.0/subnets', 'subnet', {
    network_id: pub.id,
    cidr: EXT_CIDR,
    gateway_ip: EXT_GATEWAY,
    allocation_pools: [{ start: '100.64.0.10', end: '100.64.3.250' }],
    enable_dhcp: false,
  });
  const nets: string[] = [];
  for (const side of ['a', 'b']) {
    const net = await post<Network>(http, '/v2.0/networks', 'network', {
      name: `l3-resync-${side}`,
      'provider:network_type': 'vxlan',
    });
    nets.push(net.id);
  }
  return { pub: pub.id, nets: nets as [string, string] };
}

/** One router with its subnets, interfaces and floating IPs; its id. */
async function oneRouter(http: Http, s: Shared, i: number): Promise<string> {
  const subnets: Subnet[] = [];
  for (const side of [0, 1] as const)
    subnets.push(
      await post<Subnet>(http, '/v2.0/subnets', 'subnet', {
        network_id: s.nets[side],
        cidr: subnetCidr(side, i),
        enable_dhcp: false,
      }),
    );
  const router = await post<{ id: string }>(http, '/v2.0/routers', 'router', {
    name: `l3-resync-${i}`,
    external_gateway_info: { network_id: s.pub },
  });
  for (const sub of subnets)
    await put(http, `/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: sub.id });
  for (const sub of subnets) {
    const port = await post<Port>(http, '/v2.0/ports', 'port', {
      network_id: sub.network_id,
      name: `l3-resync-${i}-vm`,
      fixed_ips: [{ subnet_id: sub.id, ip_address: hostIp(sub.cidr, 5) }],
    });
    await post(http, '/v2.0/floatingips', 'floatingip', {
      floating_network_id: s.pub,
      port_id: port.id,
    });
  }
  return router.id;
}

interface Fip {
  router_id: string;
  floating_ip_address: string;
  fixed_ip_address: string;
  port_id: string;
}

/** Everything each router must have on the host, read back from the API. */
async function readBack(http: Http, ids: string[], netnsPrefix: string): Promise<BenchRouter[]> {
  const ports = await list<Port>(http, '/v2.0/ports', 'ports');
  const mtus = new Map(
    (await list<Network>(http, '/v2.0/networks', 'networks')).map((n) => [n.id, n.mtu] as const),
  );
  const cidrs = new Map(
    (await list<Subnet>(http, '/v2.0/subnets', 'subnets')).map((x) => [x.id, x.cidr] as const),
  );
  const fips = await list<Fip>(http, '/v2.0/floatingips', 'floatingips');
  const portById = new Map(ports.map((p) => [p.id, p] as const));
  return ids.map((id, index) => {
    const own = ports.filter((p) => p.device_id === id);
    const mine = fips.filter((f) => f.router_id === id);
    const asPort = (p: Port, prefix: 'qr-' | 'qg-', extra: string[]): RouterPort => ({
      device: portDevice(prefix, p.id),
      portId: p.id,
      mac: p.mac_address.toLowerCase(),
      mtu: mtus.get(p.network_id) as number,
      addresses: [
        ...p.fixed_ips.map((f) => `${f.ip_address}/${cidrs.get(f.subnet_id)?.split('/')[1]}`),
        ...extra,
      ],
    });
    const qr = own.filter((p) => p.device_owner === 'network:router_interface');
    const gw = own.find((p) => p.device_owner === 'network:router_gateway');
    if (qr.length !== 2 || !gw || mine.length !== 2)
      throw new Error(
        `router ${id}: ${qr.length} interfaces, gateway ${!!gw}, ${mine.length} FIPs`,
      );
    const qg = asPort(
      gw,
      'qg-',
      mine.map((f) => `${f.floating_ip_address}/32`),
    );
    return {
      index,
      id,
      netns: `${netnsPrefix}qrouter-${id}`,
      ports: [...qr.map((p) => asPort(p, 'qr-', [])), qg],
      qg: qg.device,
      gatewayIp: gw.fixed_ips[0]?.ip_address as string,
      fips: mine.map((f) => ({
        floatingIp: f.floating_ip_address,
        fixedIp: f.fixed_ip_address,
        portId: f.port_id,
        mac: portById.get(f.port_id)?.mac_address.toLowerCase() as string,
      })),
    };
  });
}

/** The whole topology for `n` routers, `width` routers at a time. */
export async function buildTopology(
  http: Http,
  n: number,
  netnsPrefix: string,
  width = 6,
): Promise<BenchRouter[]> {
  const shared = await sharedNetworks(http);
  const ids: string[] = new Array(n);
  await inBatches([...Array(n).keys()], width, async (i) => {
    ids[i] = await oneRouter(http, shared, i);
  });
  const routers = await readBack(http, ids, netnsPrefix);
  for (const r of routers)
    if (!r.ports.some((p) => p.addresses.includes(`${r.gatewayIp}/${EXT_PREFIX}`)))
      throw new Error(`router ${r.id}: gateway ${r.gatewayIp} not on ${EXT_CIDR}`);
  return routers;
}
