/**
 * Property: nothing kumo-api accepts makes the compute or the OVS agent's renderers throw
 * or leave it out.
 *
 * Random flavors, images (kernel, ramdisk, command lines), networks (every provider type,
 * segmentation id and physical network), subnets, ports (fixed IPs, MACs, admin state,
 * bindings) and servers (names in any Unicode, XML's specials included; `{uuid}`,
 * `{uuid, fixed_ip}` and `{port}` NICs) are sent to the real API (buildApp, sqlite, a real
 * broker, a live compute agent's report); what it accepts is read back through the API's
 * own RPC handler — get_instance for the compute agent, get_devices_details and
 * tunnel_sync for the OVS agent — through the wire (JSON) and the agents' contracts, then
 * rendered with nothing observed on the host:
 * - compute: the target (desired.ts: the domain XML, NICs, paths), the spawn plan and the
 *   VIF plan in both VIF modes; the XML is well-formed (only XML 1.0 characters, every
 *   value escaped, one root, tags nested), carries every port's MAC and reads back (our
 *   metadata reader) as the spec;
 * - ovs: every port the API describes to the host is on br-int with its network's VLAN
 *   (admin-down: the dead VLAN), its tunnel flows, and the OVSDB and flow plan.
 * The seed is printed; KUMO_PROPERTY_SEED replays it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { ComputeSettings } from '../../agents/compute/desired.ts';
import type { ObservedInstance } from '../../agents/compute/observe.ts';
import { planInstance, vifTarget } from '../../agents/compute/plan.ts';
import { instanceTarget } from '../../agents/compute/target.ts';
import { planVifs } from '../../agents/compute/vif-plan.ts';
import { DEAD_VLAN, desiredOvs, type OvsSettings } from '../../agents/ovs/desired.ts';
import { tunnelPeers } from '../../agents/ovs/l2.ts';
import { planOvs } from '../../agents/ovs/plan.ts';
import type { Db } from '../../api/db/index.ts';
import { listPorts } from '../../api/db/ports.ts';
import { QUOTA_DEFAULTS } from '../../api/deps.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import { GetInstanceResult, type InstanceSpec } from '../../contracts/instances.ts';
import { GetDevicesDetailsResult } from '../../contracts/l2.ts';
import { METHODS, type Message } from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { portDevice } from '../../host/ip/names.ts';
import type { ObservedPort } from '../../host/ovs/ports.ts';
import {
  type Body,
  checkXml,
  fixedIp,
  flavorBody,
  hostName,
  hostWith,
  networkBody,
  portBody,
  subnetBody,
  xmlName,
} from '../helpers/agent-values.ts';
import { ipText, rng } from '../helpers/api-values.ts';
import { type PropertyApi, startPropertyApi } from '../helpers/property-api.ts';

const ADMIN = 'admin-token-property-agents';
/** The one host: its compute agent and its OVS agent (as on a real compute node). */
const HOST = 'prop-compute';
const OTHER_HOST = 'prop-other';
const SERVERS = 80;
const OVS_NETWORKS = 30;
/** A flavor every image fits, so enough servers are accepted whatever flavors are drawn. */
const SAFE_FLAVOR = { id: 'safe', name: 'safe' };

const COMPUTE: ComputeSettings = {
  host: HOST,
  instancesPath: '/var/lib/kumo/instances',
  baseDir: '/var/lib/kumo/instances/_base',
  virtType: 'kvm',
  intBridge: 'br-int',
  vifPluggingTimeoutMs: 300_000,
  shutdownTimeoutMs: 60_000,
  stateDir: '/var/lib/kumo/compute',
  forceConfigDrive: false,
};
/** The lab's mode: bare taps the agent plugs into ovs-vswitchd's netns. */
const COMPUTE_ETHERNET: ComputeSettings = { ...COMPUTE, vswitchdNetns: 'kumo-vswitchd' };
const OVS: OvsSettings = {
  intBridge: 'br-int',
  tunBridge: 'br-tun',
  datapathType: 'system',
  localIp: '192.0.2.10',
  tunnelTypes: ['vxlan', 'gre'],
};
const NOTHING: ObservedInstance = {
  domain: null,
  files: {
    dir: false,
    owner: null,
    staging: false,
    disk: false,
    kernel: false,
    ramdisk: false,
    configDrive: false,
  },
  vifs: null,
};

/* ------------------------------------------------------------------ tests */

describe('property: what the API accepts, the compute and OVS agents render whole', {
  timeout: 240_000,
}, () => {
  const r = rng();
  let api: PropertyApi;
  let db: Db;
  let app: FastifyInstance;
  let rpc: (m: Message) => Promise<unknown>;
  const counts: Record<string, number> = {};
  const count = (what: string) => {
    counts[what] = (counts[what] ?? 0) + 1;
  };
  /** Networks with at least one subnet: servers may ask for them. */
  const bootable: { network: Network; subnets: Subnet[] }[] = [];
  const flavors: { id: string; name: string }[] = [];
  const images: string[] = [];
  const freePorts: string[] = [];

  before(async () => {
    api = await startPropertyApi((dir) => ({
      adminToken: ADMIN,
      memberTokens: [],
      agentDownTime: 3600,
      bodyLimit: 1 << 20,
      images: { dir: join(dir, 'images'), sizeLimit: 1 << 20 },
      // Random flavors are large: quotas (their own suites) would refuse most servers.
      quotas: {
        neutron: { ...QUOTA_DEFAULTS.neutron, network: -1, subnet: -1, port: -1 },
        nova: { instances: -1, cores: -1, ram: -1, key_pairs: -1 },
      },
      network: {
        tenantNetworkTypes: ['vxlan', 'gre'],
        vniRanges: [[1, 2 ** 24 - 1]],
        greIdRanges: [
          [1, 100],
          [2 ** 32 - 10, 2 ** 32 - 1],
        ],
        flatNetworks: ['*'],
        globalPhysnetMtu: 9000,
      },
    }));
    ({ db, app } = api);
    const { deps } = api;
    rpc = createRpcHandler(deps);
    const reports = createReportConsumer({ ...deps, agentDownTime: 3600 });
    await reports.handle({
      agent_state: {
        agent_type: 'Compute agent',
        binary: 'kumo-compute-agent',
        topic: 'compute_agent',
        host: HOST,
        start_flag: true,
        configurations: { vcpus: 1e9, memory_mb: 1e15, local_gb: 1e13 },
      },
      time: new Date().toISOString(),
    });
  });
  after(() => api.close());

  const call = async (method: 'POST' | 'PUT', url: string, payload: unknown, type?: string) => {
    const headers: Record<string, string> = { 'x-auth-token': ADMIN };
    if (type) headers['content-type'] = type;
    const res = await app.inject({ method, url, payload: payload as string, headers });
    const what = `${method} ${url} ${JSON.stringify(payload)}`;
    assert.ok(res.statusCode < 500, `${what} → ${res.body}`);
    count(res.statusCode < 300 ? `${url.split('/')[2] ?? url} accepted` : 'refused');
    return res.statusCode < 300 && res.body ? (res.json() as Body) : undefined;
  };
  /** An RPC call as the agents make it: args through the method's schema, reply as JSON. */
  const ask = async <M extends Message['method']>(method: M, args: unknown) =>
    JSON.parse(
      JSON.stringify(await rpc({ method, args: METHODS[method].parse(args) } as Message)),
    ) as unknown;

  async function makeNetwork() {
    const made = await call('POST', '/v2.0/networks', networkBody(r));
    const network = made?.network as Network | undefined;
    if (!network) return undefined;
    const subnets: Subnet[] = [];
    for (let i = r.int(0, 2); i > 0; i--) {
      const s = await call('POST', '/v2.0/subnets', subnetBody(r, network.id));
      if (s) subnets.push(s.subnet as Subnet);
    }
    if (subnets.length) bootable.push({ network, subnets });
    return { network, subnets };
  }

  async function makeImage(body: Body): Promise<string | undefined> {
    const made = await call('POST', '/v2/images', { name: xmlName(r), ...body });
    if (!made) return undefined;
    const id = String(made.id);
    const data = Buffer.from(`bytes of ${id}`);
    await call('PUT', `/v2/images/${id}/file`, data, 'application/octet-stream');
    return id;
  }

  async function makeImages() {
    const fmt = (f: string, c = f) => ({ disk_format: f, container_format: c });
    const kernel = await makeImage(fmt('aki'));
    const ramdisk = await makeImage(fmt('ari'));
    if (kernel) images.push(kernel);
    for (let i = 0; i < 12; i++) {
      const boot: Body = r.pick([fmt('qcow2', 'bare'), fmt('raw', 'bare'), fmt('ami')]);
      if (kernel && (boot.disk_format === 'ami' || r.chance(0.3))) boot.kernel_id = kernel;
      if (ramdisk && boot.kernel_id && r.chance(0.5)) boot.ramdisk_id = ramdisk;
      if (r.chance(0.6)) boot.os_command_line = r.chance(0.2) ? '' : xmlName(r);
      if (r.chance(0.2)) boot.min_ram = r.pick([0, 64, 100000]);
      const id = await makeImage(boot);
      if (id) images.push(id);
    }
  }

  function nicRequest(): Body {
    const port = freePorts.length > 0 && r.chance(0.35) ? freePorts.pop() : undefined;
    if (port) return { port };
    const { network, subnets } = r.pick(bootable);
    const nic: Body = { uuid: network.id };
    if (r.chance(0.3)) nic.fixed_ip = String(fixedIp(r, subnets).ip_address ?? ipText(r, 4));
    return nic;
  }

  function serverBody(): Body {
    const f = r.chance(0.3) ? SAFE_FLAVOR : r.pick(flavors);
    const server: Body = {
      name: xmlName(r),
      flavorRef: r.chance(0.7) || !/^[^\s'"<>;]+$/.test(f.name) ? f.id : f.name,
      imageRef: r.pick(images),
    };
    if (r.chance(0.9))
      server.networks = r.chance(0.1)
        ? r.pick(['none', 'auto'])
        : Array.from({ length: r.int(1, 4) }, nicRequest);
    if (r.chance(0.3)) server.metadata = { [xmlName(r) || 'k']: xmlName(r) };
    return { server };
  }

  /** The spec as get_instance serves it, through the contract; null: not handed over. */
  async function served(id: string): Promise<InstanceSpec | null> {
    const reply = await ask('get_instance', { host: HOST, instance_id: id });
    return GetInstanceResult.parse(reply).instance;
  }

  /** The compute agent's desired state and plans of a spec, in both VIF modes. */
  function render(spec: InstanceSpec, where: string) {
    for (const settings of [COMPUTE, COMPUTE_ETHERNET]) {
      const t = instanceTarget({ spec, onStart: false, finished: null }, spec.id, settings);
      assert.equal(t.problem, null, `the spec becomes a domain: ${where}`);
      assert.ok(t.instance, where);
      checkXml(t.instance.xml, spec, HOST, where);
      const steps = planInstance(t, NOTHING);
      const define = steps.find((s) => s.kind === 'define');
      assert.equal(define?.kind === 'define' && define.xml, t.instance.xml, where);
      assert.equal(t.nics.length, spec.ports.length, `every port a NIC: ${where}`);
      const taps = Object.fromEntries(t.nics.map((n) => [n.tap, 'root' as const]));
      const plugged: ObservedPort[] = t.nics.map((n) => ({
        uuid: randomUUID(),
        name: n.tap,
        bridge: settings.intBridge,
        ifaceId: n.portId,
        attachedMac: n.mac,
        vmUuid: spec.id,
      }));
      const vifs = planVifs(vifTarget(t), { ports: settings.vswitchdNetns ? [] : plugged, taps });
      if (settings.vswitchdNetns && t.nics.length)
        assert.equal(vifs.at(-1)?.kind, 'ovsdb', `the NICs plugged: ${where}`);
    }
  }

  test(`${SERVERS} random servers become well-formed domains with every NIC (seed printed)`, async (t) => {
    t.diagnostic(`seed ${r.seed} (KUMO_PROPERTY_SEED=${r.seed} replays it)`);
    for (let i = 0; i < 10; i++) {
      const made = await call('POST', '/flavors', flavorBody(r));
      if (made) flavors.push(made.flavor as { id: string; name: string });
    }
    await call('POST', '/flavors', { flavor: { ...SAFE_FLAVOR, vcpus: 1, ram: 64, disk: 1 } });
    await makeImages();
    const roomy = await call('POST', '/v2.0/networks', { network: { name: 'roomy' } });
    const network = roomy?.network as Network;
    const cidr = { network_id: network.id, cidr: '10.128.0.0/16', ip_version: 4 };
    const subnet = (await call('POST', '/v2.0/subnets', { subnet: cidr }))?.subnet as Subnet;
    bootable.push({ network, subnets: [subnet] });
    while (bootable.length < 6) await makeNetwork();
    for (let i = 0; i < 12; i++) {
      const { network, subnets } = r.pick(bootable);
      const port = await call('POST', '/v2.0/ports', portBody(r, network.id, subnets, ''));
      if (port) freePorts.push((port.port as Port).id);
    }
    let rendered = 0;
    for (let i = 0; i < SERVERS; i++) {
      const body = serverBody();
      const made = await call('POST', '/servers', body);
      if (!made) continue;
      const id = String((made.server as Body).id);
      const spec = await served(id);
      const where = `seed ${r.seed}, request ${JSON.stringify(body)}, spec ${JSON.stringify(spec)}`;
      if (spec === null) {
        count('servers not handed over');
        continue;
      }
      assert.doesNotThrow(() => render(spec, where), where);
      rendered++;
      counts.nics = (counts.nics ?? 0) + spec.ports.length;
    }
    t.diagnostic(`${JSON.stringify(counts)}, rendered ${rendered} servers`);
    assert.ok(rendered >= SERVERS / 8, `enough rendered servers (${rendered})`);
    assert.ok((counts.nics ?? 0) >= SERVERS / 8, `enough NICs: ${JSON.stringify(counts)}`);
  });

  test(`${OVS_NETWORKS} random networks: every port of the host on br-int (seed printed)`, async (t) => {
    t.diagnostic(`seed ${r.seed} (KUMO_PROPERTY_SEED=${r.seed} replays it)`);
    for (let i = 0; i < OVS_NETWORKS; i++) {
      const made = await makeNetwork();
      if (!made) continue;
      for (let j = r.int(1, 4); j > 0; j--) {
        const host = r.pick([HOST, HOST, '', OTHER_HOST]);
        await call('POST', '/v2.0/ports', portBody(r, made.network.id, made.subnets, host));
      }
    }
    for (let i = r.int(2, 8); i > 0; i--) {
      const types = r.pick([['vxlan'], ['gre'], ['vxlan', 'gre'], []]);
      await ask('tunnel_sync', { host: hostName(r), tunnel_ip: ipText(r, 4), tunnel_types: types });
    }
    const own = { host: HOST, tunnel_ip: OVS.localIp, tunnel_types: OVS.tunnelTypes };
    const { peers, rejected } = tunnelPeers(await ask('tunnel_sync', own));
    assert.deepEqual(rejected, [], `every peer the API serves is one the contract takes`);

    const all = await listPorts(db, { columns: {}, clauses: [] });
    const ours = all.filter((p) => p['binding:host_id'] === HOST || p['binding:host_id'] === '');
    const strangers = [randomUUID(), randomUUID()];
    const asked = [...all.map((p) => p.id), ...strangers];
    const reply = await ask('get_devices_details', { host: HOST, devices: asked });
    const { devices, unknown } = GetDevicesDetailsResult.parse(reply);
    const where = `seed ${r.seed}`;
    assert.deepEqual(
      devices.map((d) => d.device).sort(),
      ours.map((p) => p.id).sort(),
      `every port of this host (or unbound) described, no other: ${where}`,
    );
    const elsewhere = all.filter((p) => !ours.includes(p)).map((p) => p.id);
    assert.deepEqual(unknown.sort(), [...elsewhere, ...strangers].sort(), where);

    const state = hostWith(devices, OVS.intBridge);
    const details = new Map(devices.map((d) => [d.device, d]));
    const desired = desiredOvs(OVS, state, details, peers);
    const tunFlows = desired.flows.get(OVS.tunBridge)?.join('\n') ?? '';
    for (const d of devices) {
      const at = `${where}, device ${JSON.stringify(d)}`;
      const port = desired.ports.get(portDevice('tap', d.device));
      assert.ok(port, `on br-int: ${at}`);
      if (!d.admin_state_up) {
        assert.equal(port.tag, DEAD_VLAN, at);
        continue;
      }
      assert.ok(port.tag >= 1 && port.tag < DEAD_VLAN, at);
      assert.equal(port.otherConfig.net_uuid, d.network_id, at);
      if (d.network_type !== 'flat' && d.segmentation_id !== null)
        assert.match(tunFlows, new RegExp(`tun_id=${d.segmentation_id},`), at);
    }
    const steps = planOvs(OVS, desired, state, { cookie: '0x1', rundir: '/var/run/openvswitch' });
    assert.equal(steps[0]?.kind, 'ovsdb', where);
    assert.equal(steps.at(-1)?.kind, 'flows', where);
    const up = devices.filter((d) => d.admin_state_up).length;
    const types = new Set(devices.map((d) => d.network_type));
    t.diagnostic(
      `${JSON.stringify(counts)}; ${devices.length} devices (${up} up) on ${desired.lvids.size} networks of ${[...types].join(',')}, ${desired.tunnels.size} tunnels`,
    );
    assert.ok(devices.length >= OVS_NETWORKS, `enough devices (${devices.length})`);
    assert.ok(desired.lvids.size >= OVS_NETWORKS / 3, `enough networks (${desired.lvids.size})`);
  });
});
