/**
 * Probes for the security-group fullstack test on the multi-host lab (lab.ts): what a
 * stand-in VM can reach (ping, TCP connect), what another one receives (its ICMP echo
 * counter, its neighbour table), and the spoofing a VM might try (a second source address,
 * another MAC, an ARP reply for an address it does not own); plus the Neutron calls the
 * test makes, each asserting its status.
 *
 * Invariant: every probe runs inside an endpoint namespace the lab made, on the lab's own
 * addresses, and answers with a plain fact (reached or not, a count, a MAC); a probe never
 * waits longer than its own timeout, so "refused" means "no connection within `ms`".
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from './cluster.ts';
import { waitFor } from './env.ts';
import type { Endpoint, Lab, LabHost } from './lab.ts';
import { tcpConnect } from './tcp-peer.ts';

/** The Neutron shapes the test reads (only the keys it uses). */
export interface SgRule {
  id: string;
  security_group_id: string;
  direction: string;
  ethertype: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
}
export interface SecurityGroup {
  id: string;
  name: string;
  project_id: string;
  security_group_rules: SgRule[];
}
export interface SgPort {
  id: string;
  mac_address: string;
  fixed_ips: { ip_address: string }[];
  security_groups: string[];
  port_security_enabled: boolean;
  allowed_address_pairs: { ip_address: string; mac_address: string }[];
  status: string;
}

/** Neutron calls with the status each must answer. */
export function neutron(c: Cluster) {
  /** The collection's URL: /v2.0/security-group-rules for `security_group_rule`. */
  const url = (kind: string) => `/v2.0/${kind.replaceAll('_', '-')}s`;
  const call = async (method: string, path: string, body: unknown, status: number) => {
    const res = await c.http(method, path, body);
    assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body as Record<string, unknown>;
  };
  return {
    create: async <T>(kind: string, body: Record<string, unknown>): Promise<T> =>
      (await call('POST', url(kind), { [kind]: body }, 201))[kind] as T,
    update: async <T>(kind: string, id: string, body: Record<string, unknown>): Promise<T> =>
      (await call('PUT', `${url(kind)}/${id}`, { [kind]: body }, 200))[kind] as T,
    remove: async (kind: string, id: string) => {
      await call('DELETE', `${url(kind)}/${id}`, undefined, 204);
    },
    list: async <T>(kind: string, query = ''): Promise<T[]> =>
      (await call('GET', `${url(kind)}${query}`, undefined, 200))[`${kind}s`] as T[],
    show: async <T>(kind: string, id: string): Promise<T> =>
      (await call('GET', `${url(kind)}/${id}`, undefined, 200))[kind] as T,
  };
}

/** An ingress rule on `group` as the seed writes it (`nova secgroup-add-rule`): from anywhere. */
export const ingress = (
  group: string,
  protocol: string,
  port?: number,
  more: Record<string, unknown> = {},
) => ({
  security_group_id: group,
  direction: 'ingress',
  ethertype: 'IPv4',
  protocol,
  ...(port === undefined ? {} : { port_range_min: port, port_range_max: port }),
  ...(more.remote_group_id ? {} : { remote_ip_prefix: '0.0.0.0/0' }),
  ...more,
});

/** br-`bridge`'s flows on `h`, cookies and statistics stripped, sorted. */
export async function flowsOf(h: LabHost, bridge = 'br-int'): Promise<string[]> {
  return (await h.ofctl(['dump-flows', '--names', '--no-stats', `unix:${h.dir}/${bridge}.mgmt`]))
    .split('\n')
    .map((l) => l.trim().replace(/cookie=0x[0-9a-f]+,?\s*/, ''))
    .filter((l) => l && !l.startsWith('NXST') && !l.startsWith('OFPST'))
    .sort();
}

/** br-int's flows on every host in `hosts`, once two dumps a second apart agree. */
export function stableFlows(hosts: LabHost[]): Promise<string[][]> {
  let last = '';
  return waitFor(
    'br-int flows to settle',
    async () => {
      const now = JSON.stringify(await Promise.all(hosts.map((h) => flowsOf(h))));
      const same = now === last;
      last = now;
      return same ? (JSON.parse(now) as string[][]) : null;
    },
    30_000,
    1000,
  );
}

export function probes(lab: Lab) {
  const exec = (ep: Endpoint, argv: string[]) => lab.exec(ep.netns, argv);
  return {
    /** `count` echo requests from `from` (from its address `source` when given): any reply? */
    pings: (from: Endpoint, ip: string, opts: { count?: number; source?: string } = {}) =>
      exec(from, [
        'ping',
        ...(opts.source ? ['-I', opts.source] : []),
        '-c',
        String(opts.count ?? 2),
        '-i',
        '0.2',
        '-W',
        '1',
        ip,
      ]).then(
        () => true,
        () => false,
      ),
    /** A TCP connection from `from` to ip:port made within `ms`, then closed. */
    connects: async (from: Endpoint, ip: string, port: number, ms = 2500) => {
      const conn = await tcpConnect(from.netns, ip, port, ms).catch(() => null);
      conn?.close();
      return conn !== null;
    },
    /** ICMP echo requests `ep`'s namespace has received so far (/proc/net/snmp, per netns). */
    inEchos: async (ep: Endpoint) => {
      const lines = (await exec(ep, ['cat', '/proc/net/snmp'])).split('\n');
      const [names, values] = lines.filter((l) => l.startsWith('Icmp:')) as [string, string];
      const i = names.split(/\s+/).indexOf('InEchos');
      return Number(values.split(/\s+/)[i]);
    },
    /** The MAC `ep`'s neighbour table holds for `ip`, or null. */
    neighbour: async (ep: Endpoint, ip: string) =>
      /lladdr ([0-9a-f:]{17})/.exec(
        await exec(ep, ['ip', 'neigh', 'show', ip, 'dev', ep.name]),
      )?.[1] ?? null,
    /** A permanent neighbour entry: ARP plays no part in what a probe then shows. */
    pinNeighbour: (ep: Endpoint, ip: string, mac: string) =>
      exec(ep, ['ip', 'neigh', 'replace', ip, 'lladdr', mac, 'dev', ep.name, 'nud', 'permanent']),
    forgetNeighbour: (ep: Endpoint, ip: string) =>
      exec(ep, ['ip', 'neigh', 'del', ip, 'dev', ep.name]).catch(() => ''),
    addAddress: (ep: Endpoint, ip: string) =>
      exec(ep, ['ip', 'addr', 'add', `${ip}/32`, 'dev', ep.name, 'noprefixroute']),
    setMac: (ep: Endpoint, mac: string) => exec(ep, ['ip', 'link', 'set', ep.name, 'address', mac]),
    /** Neighbours learn from gratuitous ARP (so an ARP reply that arrives shows in the table). */
    acceptArp: (ep: Endpoint) =>
      exec(ep, ['sysctl', '-qw', `net.ipv4.conf.${ep.name}.arp_accept=1`]),
    /** Two unsolicited ARP replies from `ep` saying `ip` is at its MAC (it does not own `ip`). */
    arpReply: async (ep: Endpoint, ip: string) => {
      await exec(ep, ['sysctl', '-qw', 'net.ipv4.ip_nonlocal_bind=1']);
      await exec(ep, ['arping', '-A', '-c', '2', '-w', '2', '-I', ep.name, ip]);
    },
  };
}

/**
 * busybox udhcpd in `ep`'s namespace offering 10.0.0.200-210 (its files under `dir`); what
 * it logged so far (`sending OFFER` once a DISCOVER reached it), and a stop that kills it.
 */
export function dhcpServer(ep: Endpoint, dir: string) {
  const conf = join(dir, `udhcpd-${ep.name}.conf`);
  writeFileSync(
    conf,
    [
      'start 10.0.0.200',
      'end 10.0.0.210',
      `interface ${ep.name}`,
      `lease_file ${join(dir, `leases-${ep.name}`)}`,
      `pidfile ${join(dir, `udhcpd-${ep.name}.pid`)}`,
      'opt subnet 255.255.255.0',
      '',
    ].join('\n'),
  );
  const child = spawn(
    'ip',
    ['netns', 'exec', ep.netns, 'busybox', 'udhcpd', '-f', '-a', '100', conf],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  child.stdout.on('data', (d) => {
    log += d;
  });
  child.stderr.on('data', (d) => {
    log += d;
  });
  process.on('exit', () => child.kill('SIGKILL'));
  return { log: () => log, stop: () => child.kill('SIGKILL') };
}
