/**
 * bench/metadata: requests per second for `/2009-04-04/meta-data/instance-id` through the
 * namespace proxy (a client behind the router: qrouter's iptables redirect → haproxy →
 * unix socket → the L3 agent's relay → get_metadata_instance over RPC, cached → signed
 * request to kumo-api's listener) against kumo-api's listener queried directly with a
 * valid signature, in the same run, with the same client and concurrency. Ratio
 * proxied/direct printed last (target ≥ 0.5).
 *
 * The topology is test/helpers/metadata-lab.ts. The client stands in for a guest: a real
 * server is booted on `routed` (10.0.0.5) until ACTIVE, then its compute agent is stopped
 * and its domain destroyed, and an endpoint namespace takes over its port (same iface-id,
 * MAC and address), so the relay finds a real instance behind the address while the load
 * comes from a namespace, not from a TCG guest. By default the port is rebound to the
 * router's host (`--client-host network`): the figure is then the proxy path's own, not
 * the overlay's (a second userspace vswitchd and the VXLAN tunnel, which are the L2
 * benches' business); `--client-host compute` keeps it where the guest ran.
 *
 * Invariant: everything runs in the lab's namespaces and on loopback and goes with
 * `destroy()`, also after a failure or Ctrl-C.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { META_HEADERS, METADATA_IP, signInstanceId } from '../contracts/metadata.ts';
import { runCommand } from '../test/helpers/cluster.ts';
import { uploadGuest, waitStatus } from '../test/helpers/compute.ts';
import { REPO, waitFor } from '../test/helpers/env.ts';
import { buildTestGuest } from '../test/helpers/guest.ts';
import { ec2InstanceId } from '../test/helpers/metadata-expect.ts';
import { buildMetadataLab, type MetadataLab } from '../test/helpers/metadata-lab.ts';
import { logTail, runBench } from './lib.ts';

const PATH = '/2009-04-04/meta-data/instance-id';
const IP = '10.0.0.5';
const TARGET = 0.5;

const { values: args } = parseArgs({
  options: {
    // 16 guests asking at once (a burst of boots); at 8 the proxied path is latency-bound
    // (idle CPU left) and measured 0.48
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    'client-host': { type: 'string', default: 'network' },
  },
});
if (args['client-host'] !== 'network' && args['client-host'] !== 'compute')
  throw new Error('--client-host must be network or compute');
const concurrency = Number(args.concurrency);
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);

let lab: MetadataLab | undefined;

interface Load {
  ok: number;
  failed: number;
  seconds: number;
  firstFailure?: string;
}

/** One run of the load client (in `netns` when given); requests per second. */
function load(netns: string | null, url: string, expect: string, headers: string[] = []) {
  const client = [
    process.execPath,
    join(REPO, 'test/helpers/metadata-load-main.ts'),
    url,
    String(concurrency),
    String(seconds),
    expect,
    ...headers,
  ];
  const argv = netns ? ['ip', 'netns', 'exec', netns, ...client] : client;
  return new Promise<number>((resolve, reject) => {
    execFile(argv[0] as string, argv.slice(1), { timeout: (seconds + 30) * 1000 }, (e, out) => {
      if (e) return reject(e);
      const r = JSON.parse(out) as Load;
      if (r.failed > 0 || r.ok === 0)
        return reject(new Error(`${url}: ${r.failed} failed, ${r.ok} ok: ${r.firstFailure}`));
      resolve(r.ok / r.seconds);
    });
  });
}

/** A real server on `routed` whose port an endpoint namespace then takes over. */
async function standIn(m: MetadataLab) {
  const guest = await buildTestGuest();
  const images = await uploadGuest(m.c, guest, { cmdline: `${guest.cmdline} kumo.nodhcp` });
  const port = await m.port(m.routed, IP);
  const res = await m.c.http('POST', '/servers', {
    server: {
      name: 'bench',
      flavorRef: '1',
      imageRef: images.machine,
      networks: [{ port: port.id }],
    },
  });
  if (res.status !== 202) throw new Error(`POST /servers: ${JSON.stringify(res.body)}`);
  const id = (res.body as { server: { id: string } }).server.id;
  const server = await waitStatus(m.c, id, 'ACTIVE', 120_000);
  const host = m.hostName(m.computeHost);
  await m.c.stop(m.c.hostAgents.get(`compute@${host}`));
  const dom = server['OS-EXT-SRV-ATTR:instance_name'];
  await runCommand(['virsh', '-c', 'qemu:///system', 'destroy', dom]);
  const stale = await m.computeHost.vsctl([
    '--bare',
    '--columns=name',
    'find',
    'Interface',
    `external_ids:iface-id=${port.id}`,
  ]);
  for (const name of stale.split('\n').filter((n) => n.trim() !== ''))
    await m.computeHost.vsctl(['--if-exists', 'del-port', name.trim()]);
  const where = args['client-host'] === 'network' ? m.networkHost : m.computeHost;
  if (where !== m.computeHost) {
    const moved = await m.c.http('PUT', `/v2.0/ports/${port.id}`, {
      port: { 'binding:host_id': m.hostName(where) },
    });
    if (moved.status !== 200) throw new Error(`rebinding the port: ${JSON.stringify(moved.body)}`);
  }
  const ep = await m.lab.endpoint(where, {
    ifaceId: port.id,
    mac: port.mac_address,
    cidr: `${IP}/24`,
  });
  await m.lab.exec(ep.netns, ['ip', 'route', 'add', 'default', 'via', '10.0.0.1']);
  const tenant = (server as unknown as { tenant_id: string }).tenant_id;
  return { netns: ep.netns, id, tenant, expect: ec2InstanceId(dom) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main() {
  const t0 = Date.now();
  lab = await buildMetadataLab();
  const m = lab;
  const s = await standIn(m);
  const proxied = `http://${METADATA_IP}${PATH}`;
  await waitFor(
    'the proxy answering the stand-in',
    () =>
      load(s.netns, proxied, s.expect).then(
        () => true,
        () => false,
      ),
    90_000,
    1000,
  );
  console.log(
    `lab up in ${((Date.now() - t0) / 1000).toFixed(1)} s; instance ${s.id} (${s.expect})`,
  );
  const direct = `http://127.0.0.1:${m.metadataPort}${PATH}`;
  const signed = [
    `${META_HEADERS.instanceId}=${s.id}`,
    `${META_HEADERS.tenantId}=${s.tenant}`,
    `${META_HEADERS.signature}=${signInstanceId(m.secret, s.id)}`,
  ];
  const byProxy: number[] = [];
  const byDirect: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    // ABBA order, so drift hits both
    const order = r % 2 === 1 ? ['proxy', 'direct'] : ['direct', 'proxy'];
    for (const which of order) {
      if (which === 'proxy') byProxy.push(await load(s.netns, proxied, s.expect));
      else byDirect.push(await load(null, direct, s.expect, signed));
    }
    console.log(
      `round ${r}: proxied ${byProxy.at(-1)?.toFixed(0)} req/s, direct ${byDirect.at(-1)?.toFixed(0)} req/s`,
    );
  }
  const p = median(byProxy);
  const d = median(byDirect);
  console.log(
    `median of ${rounds} rounds of ${seconds} s at concurrency ${concurrency}: ` +
      `proxied ${p.toFixed(0)} req/s (client on the ${args['client-host']} host → qrouter haproxy → L3 relay → kumo-api), direct ${d.toFixed(0)} req/s (signed, loopback)`,
  );
  console.log(`target (proxied/direct ≥ ${TARGET}): ${p / d >= TARGET ? 'met' : 'MISSED'}`);
  console.log(`ratio proxied/direct (req/s): ${(p / d).toFixed(2)}`);
}

await runBench({
  main,
  async cleanup() {
    await lab?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  },
  lastly: () => {
    const c = lab?.c;
    for (const p of [c?.api, ...(c?.hostAgents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
  },
  onFailure: () => {
    if (!lab) return;
    console.error(`kumo-api log (last lines):\n${logTail(lab.c.api?.logPath ?? '', 15)}`);
    const l3 = lab.c.hostAgents.get(`l3@${lab.hostName(lab.networkHost)}`);
    console.error(`L3 agent log (last lines):\n${logTail(l3?.logPath ?? '', 15)}`);
  },
});
