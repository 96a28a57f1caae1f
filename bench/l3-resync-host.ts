/**
 * bench/l3-resync's view of the host, read from the outside (no agent code involved): the
 * health check of one qrouter namespace, the OVS ports with their VLAN tags, and the
 * baseline script that rebuilds or verifies routers with the minimum commands.
 *
 * Invariants: checks are read-only; the script touches only the namespaces and OVS ports
 * of the routers it is given, with the values the API gave (BenchRouter) and the NAT
 * table saved from the healthy namespace during setup (the script's own config, as an
 * operator's script would keep it).
 */
import { readdirSync } from 'node:fs';
import type { CommandRunner } from '../core/exec.ts';
import { garpCommand } from '../host/arping/arping.ts';
import {
  addrReplace,
  ipBatch,
  ipCommand,
  linkSetMac,
  linkSetMtu,
  linkSetNetns,
  linkUp,
} from '../host/ip/link.ts';
import { staticRouteReplace } from '../host/ip/route.ts';
import { ipForwardCommand } from '../host/sysctl/sysctl.ts';
import { type BenchRouter, EXT_GATEWAY } from './l3-resync-topology.ts';

/** Where the host's OVS is: its db socket and the namespace ovs-vswitchd runs in. */
export interface OvsAt {
  dbSocket: string;
  netns: string;
}

/** Every qrouter-like namespace name, from /run/netns (no process). */
export function namespaces(): Set<string> {
  try {
    return new Set(readdirSync('/run/netns'));
  } catch {
    return new Set();
  }
}

export interface OvsPort {
  uuid: string;
  tag: number | null;
}

const vsctl = (ovs: OvsAt, args: string[]) => ({
  argv: ['ovs-vsctl', `--db=unix:${ovs.dbSocket}`, '--timeout=10', ...args],
});

/** Every OVS Port by name with its row uuid and VLAN tag: one ovs-vsctl. */
export async function ovsPorts(runner: CommandRunner, ovs: OvsAt): Promise<Map<string, OvsPort>> {
  const { stdout } = await runner.run(
    vsctl(ovs, ['-f', 'json', '--columns=_uuid,name,tag', 'list', 'Port']),
  );
  const rows = (JSON.parse(stdout) as { data: [[string, string], string, unknown][] }).data;
  return new Map(
    rows.map(([uuid, name, tag]) => [
      name,
      { uuid: uuid[1], tag: typeof tag === 'number' ? tag : null },
    ]),
  );
}

/** A port the OVS agent has wired: a real VLAN (not none, not the dead 4095). */
export const wired = (p: OvsPort | undefined) =>
  !!p && p.tag !== null && p.tag >= 1 && p.tag < 4095;

interface RawLink {
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { local: string; prefixlen: number; scope?: string }[];
}

function linksWrong(r: BenchRouter, stdout: string): string | null {
  const links = new Map((JSON.parse(stdout) as RawLink[]).map((l) => [l.ifname, l] as const));
  for (const p of r.ports) {
    const l = links.get(p.device);
    if (!l) return `no ${p.device}`;
    if (l.address !== p.mac || l.mtu !== p.mtu || !l.flags?.includes('UP'))
      return `${p.device}: MAC, MTU or up state`;
    const have = new Set((l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    const missing = p.addresses.find((a) => !have.has(a));
    if (missing) return `${p.device} without ${missing}`;
  }
  return null;
}

/** What a healthy router's nat table must hold (iptables-save's spelling). */
function natWrong(r: BenchRouter, save: string): string | null {
  const has = (re: RegExp) => re.test(save);
  const esc = (ip: string) => ip.replaceAll('.', '\\.');
  for (const f of r.fips) {
    if (
      !has(new RegExp(`-d ${esc(f.floatingIp)}/32 .*-j DNAT --to-destination ${esc(f.fixedIp)}\\b`))
    )
      return `no DNAT of ${f.floatingIp}`;
    if (!has(new RegExp(`-s ${esc(f.fixedIp)}/32 .*-j SNAT --to-source ${esc(f.floatingIp)}\\b`)))
      return `no SNAT to ${f.floatingIp}`;
  }
  return has(new RegExp(`-o ${r.qg} .*-j SNAT --to-source ${esc(r.gatewayIp)}\\b`))
    ? null
    : `no SNAT to the gateway ${r.gatewayIp}`;
}

/**
 * The full check of one router, cheapest first: namespace, OVS tags, links and addresses,
 * default route, ip_forward, NAT. null when healthy; `saved` gets the nat table.
 */
export async function routerWrong(
  runner: CommandRunner,
  r: BenchRouter,
  ctx: { namespaces: Set<string>; ports: Map<string, OvsPort> },
  saved?: Map<string, string>,
): Promise<string | null> {
  if (!ctx.namespaces.has(r.netns)) return 'no namespace';
  const unwired = r.ports.find((p) => !wired(ctx.ports.get(p.device)));
  if (unwired) return `${unwired.device} not wired in OVS`;
  const addr = await runner.run({ argv: ['ip', '-n', r.netns, '-j', 'addr', 'show'] });
  const links = linksWrong(r, addr.stdout);
  if (links) return links;
  const route = await runner.run({ argv: ['ip', '-n', r.netns, '-j', 'route', 'show', 'default'] });
  const dflt = (JSON.parse(route.stdout) as { gateway?: string; dev?: string }[])[0];
  if (dflt?.gateway !== EXT_GATEWAY || dflt.dev !== r.qg) return 'no default route';
  const fwd = await runner.run({ argv: ['sysctl', '-n', 'net.ipv4.ip_forward'], netns: r.netns });
  if (fwd.stdout.trim() !== '1') return 'ip_forward off';
  const save = await runner.run({ argv: ['iptables-save', '-t', 'nat'], netns: r.netns });
  saved?.set(r.id, save.stdout);
  return natWrong(r, save.stdout);
}

/** Every router's problem (empty: all healthy). */
export async function healthReport(
  runner: CommandRunner,
  ovs: OvsAt,
  routers: readonly BenchRouter[],
  saved?: Map<string, string>,
): Promise<Map<BenchRouter, string>> {
  const ctx = { namespaces: namespaces(), ports: await ovsPorts(runner, ovs) };
  const bad = new Map<BenchRouter, string>();
  for (const r of routers) {
    const why = await routerWrong(runner, r, ctx, saved);
    if (why) bad.set(r, why);
  }
  return bad;
}

// ---------------------------------------------------------------- the baseline script

/** A deleted router rebuilt: the minimum commands (see bench/l3-resync.ts's header). */
async function rebuild(runner: CommandRunner, ovs: OvsAt, r: BenchRouter, nat: string) {
  await runner.run({ argv: ['ip', 'netns', 'add', r.netns] });
  await runner.run(ipCommand(linkUp('lo'), r.netns));
  // The rows outlive their devices: removed first, in their own transaction (one
  // transaction with add-port would leave ovs-vswitchd nothing to recreate).
  await runner.run(
    vsctl(
      ovs,
      r.ports.flatMap((p) => ['--', '--if-exists', 'del-port', p.device]),
    ),
  );
  await runner.run(
    vsctl(
      ovs,
      r.ports.flatMap((p) => [
        ...['--', 'add-port', 'br-int', p.device, '--', 'set', 'Interface', p.device],
        ...['type=internal', `external_ids:iface-id=${p.portId}`],
        ...[`external_ids:attached-mac=${p.mac}`, 'external_ids:iface-status=active'],
      ]),
    ),
  );
  await runner.run(
    ipBatch(
      r.ports.map((p) => linkSetNetns(p.device, r.netns)),
      ovs.netns,
    ),
  );
  await runner.run(
    ipBatch(
      [
        ...r.ports.flatMap((p) => [
          linkSetMac(p.device, p.mac),
          linkSetMtu(p.device, p.mtu),
          linkUp(p.device),
          ...p.addresses.map((a) => addrReplace(p.device, a)),
        ]),
        staticRouteReplace({ destination: '0.0.0.0/0', via: EXT_GATEWAY, dev: r.qg }),
      ],
      r.netns,
    ),
  );
  await runner.run(ipForwardCommand(r.netns));
  await runner.run({ argv: ['iptables-restore'], netns: r.netns, stdin: nat });
}

/** An intact router verified: addresses, default route, ip_forward and the NAT rules as saved. */
async function verify(runner: CommandRunner, r: BenchRouter, nat: string) {
  const addr = await runner.run({ argv: ['ip', '-n', r.netns, '-j', 'addr', 'show'] });
  const route = await runner.run({ argv: ['ip', '-n', r.netns, '-j', 'route', 'show'] });
  const fwd = await runner.run({ argv: ['sysctl', '-n', 'net.ipv4.ip_forward'], netns: r.netns });
  const save = await runner.run({ argv: ['iptables-save', '-t', 'nat'], netns: r.netns });
  const rules = (t: string) => t.split('\n').filter((l) => l.startsWith('-A '));
  const same = rules(save.stdout).join('\n') === rules(nat).join('\n');
  const dflt = (JSON.parse(route.stdout) as { dst: string; gateway?: string; dev?: string }[]).find(
    (x) => x.dst === 'default',
  );
  const routed = dflt?.gateway === EXT_GATEWAY && dflt.dev === r.qg;
  if (linksWrong(r, addr.stdout) || !routed || fwd.stdout.trim() !== '1' || !same)
    throw new Error(`script: intact router ${r.id} is not as saved`);
}

/**
 * The baseline: sequentially, one `ls /run/netns` equivalent for all, then per router a
 * rebuild (namespace missing) or a verification; gratuitous ARPs for the rebuilt
 * gateway and floating IPs go in the background, as the agent sends them.
 */
export async function script(
  runner: CommandRunner,
  ovs: OvsAt,
  routers: readonly BenchRouter[],
  nat: Map<string, string>,
  garpCount: number,
): Promise<{ rebuilt: number; verified: number }> {
  const present = namespaces();
  const counts = { rebuilt: 0, verified: 0 };
  for (const r of routers) {
    const saved = nat.get(r.id) as string;
    if (present.has(r.netns)) {
      await verify(runner, r, saved);
      counts.verified++;
      continue;
    }
    await rebuild(runner, ovs, r, saved);
    counts.rebuilt++;
    for (const ip of [r.gatewayIp, ...r.fips.map((f) => f.floatingIp)])
      runner
        .run(garpCommand({ device: r.qg, ip, count: garpCount, netns: r.netns }))
        .catch(() => {});
  }
  return counts;
}
