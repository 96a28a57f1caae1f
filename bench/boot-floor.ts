/**
 * bench/boot's floor, and what both of its phases share (percentiles, a bounded pool,
 * a dnsmasq lease-file watcher).
 *
 * The floor is the same test guest booted the way an operator would without any cloud: a
 * hand-written domain XML (kernel + initrd + cmdline, TCG, one virtio NIC on a tap libvirt
 * makes, a file serial console) started by one `virsh -c qemu:///system create FILE`
 * process per domain. Right after `virsh create` returns, the tap is moved into the floor's
 * own namespace and enslaved to a Linux bridge there, where a dnsmasq (started directly
 * with argv: one `--dhcp-host` per MAC, its lease file in a temp dir) serves DHCP on the
 * bridge's address. A domain's time runs from the `virsh create` spawn until its MAC first
 * shows up in that lease file.
 *
 * Invariants: everything the floor makes carries the run's prefix (domain names,
 * namespace, taps) or lies in its temp dir, and `close()` removes it all (transient
 * domains vanish on destroy, and their taps with them); addresses exist only inside the
 * floor's namespace: the taps libvirt creates in the root namespace carry none and leave
 * it within milliseconds.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { xmlEscape } from '../agents/compute/domain.ts';
import type { CommandRunner } from '../core/exec.ts';
import { parseLeases } from '../host/dnsmasq/leases.ts';
import { ipBatch, ipCommand, linkSetNetns } from '../host/ip/link.ts';
import { startDaemon } from '../host/process/daemon.ts';
import { killDnsmasqUnder } from './lib.ts';

export const now = () => performance.now();

/** Nearest-rank percentile (`p` in 0..1) of a non-empty list. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil(p * s.length) - 1))] as number;
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
export const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const stats = (xs: number[]) =>
  `p50 ${sec(percentile(xs, 0.5))}, p95 ${sec(percentile(xs, 0.95))}, mean ${sec(mean(xs))}`;

/** Runs `job(0..n-1)` with at most `concurrency` in flight; a new one starts as one ends. */
export async function pool<T>(
  n: number,
  concurrency: number,
  job: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
  return out;
}

/** Polls `get` until it gives a value; fails after `timeoutMs` or when `abort` gives an error. */
export async function until<T>(
  what: string | (() => string),
  get: () => T | undefined,
  timeoutMs: number,
  abort?: () => Error | undefined,
  stepMs = 10,
): Promise<T> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    const err = abort?.();
    if (err) throw err;
    if (now() > deadline) {
      const text = typeof what === 'string' ? what : what();
      throw new Error(`${text} after ${Math.round(timeoutMs / 1000)} s`);
    }
    await sleep(stepMs);
  }
}

export interface LeaseWatch {
  /** Resolves with the `now()` of the first read that showed `mac` in the lease file. */
  seen(mac: string, timeoutMs: number, abort?: () => Error | undefined): Promise<number>;
  stop(): void;
}

/** MACs in a dnsmasq lease file, read with the DHCP agent's own parser. */
function leasedMacs(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return parseLeases(text).leases.flatMap((l) => (l.version === 4 ? [l.mac.toLowerCase()] : []));
}

/** Reads `path` every `pollMs` and keeps the first time each MAC appeared in it. */
export function watchLeases(path: string, pollMs = 20): LeaseWatch {
  const first = new Map<string, number>();
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const at = now();
      for (const mac of leasedMacs(path)) if (!first.has(mac)) first.set(mac, at);
      await sleep(pollMs);
    }
  })();
  return {
    seen(mac, timeoutMs, abort) {
      const key = mac.toLowerCase();
      return until(
        `no lease for ${key} in ${path}`,
        () => first.get(key),
        timeoutMs,
        () => (stopped ? new Error('lease watch stopped') : abort?.()),
      );
    },
    stop() {
      stopped = true;
    },
  };
}

export interface FloorGuest {
  kernel: string;
  initrd: string;
  cmdline: string;
  ramMiB: number;
  vcpus: number;
}

export interface FloorBoot {
  name: string;
  mac: string;
  /** `virsh create` spawn → its exit. */
  createMs: number;
  /** `virsh create` spawn → the MAC first in the lease file. */
  leaseMs: number;
}

export function floorLine(f: FloorBoot[]): string {
  const create = stats(f.map((b) => b.createMs));
  const lease = stats(f.map((b) => b.leaseMs));
  return `floor (hand-written XML, one virsh process per domain): virsh create ${create}; create→lease ${lease}`;
}

export interface Floor {
  netns: string;
  /** Boots domains 0..n-1 (n as given to createFloor), `concurrency` at a time. */
  run(concurrency: number, timeoutMs: number): Promise<FloorBoot[]>;
  close(): Promise<void>;
}

const BRIDGE = 'br0';
const SERVER_CIDR = '10.99.0.1/24';
const ipOf = (i: number) => `10.99.0.${10 + i}`;
const VIRSH = ['virsh', '-q', '-c', 'qemu:///system'];

/** The hand-written domain: what an operator would write for this kernel + initrd. */
export function floorDomainXml(d: {
  name: string;
  mac: string;
  tap: string;
  guest: FloorGuest;
  consoleLog: string;
}): string {
  const e = xmlEscape;
  return `<domain type='qemu'>
  <name>${e(d.name)}</name>
  <memory unit='MiB'>${d.guest.ramMiB}</memory>
  <vcpu>${d.guest.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${e(d.guest.kernel)}</kernel>
    <initrd>${e(d.guest.initrd)}</initrd>
    <cmdline>${e(d.guest.cmdline)}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <interface type='ethernet'>
      <mac address='${e(d.mac)}'/>
      <target dev='${e(d.tap)}' managed='yes'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='${e(d.consoleLog)}'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
`;
}

/** The namespace with its bridge and a dnsmasq that knows the n MACs. */
async function startNetwork(runner: CommandRunner, netns: string, dir: string, macs: string[]) {
  await runner.run({ argv: ['ip', 'netns', 'add', netns] });
  await runner.run(
    ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', BRIDGE, 'type', 'bridge'],
        ['addr', 'add', SERVER_CIDR, 'dev', BRIDGE],
        ['link', 'set', BRIDGE, 'up'],
      ],
      netns,
    ),
  );
  const pidfile = join(dir, 'pid');
  const argv = [
    'dnsmasq',
    '--no-hosts',
    '--no-resolv',
    '--conf-file=/dev/null',
    '--port=0',
    `--pid-file=${pidfile}`,
    `--dhcp-leasefile=${join(dir, 'leases')}`,
    '--bind-interfaces',
    `--interface=${BRIDGE}`,
    '--except-interface=lo',
    '--dhcp-range=10.99.0.0,static,255.255.255.0,3600s',
    ...macs.map((m, i) => `--dhcp-host=${m},${ipOf(i)}`),
  ];
  await startDaemon(runner, { argv, netns }, { pidfile, expected: `--pid-file=${pidfile}` });
}

interface FloorDomain {
  name: string;
  mac: string;
  tap: string;
}

interface FloorRun {
  runner: CommandRunner;
  guest: FloorGuest;
  netns: string;
  dir: string;
  leases: LeaseWatch;
  started: Set<string>;
}

/** One domain: `virsh create`, the tap into the namespace, then its lease. */
async function bootDomain(r: FloorRun, d: FloorDomain, timeoutMs: number): Promise<FloorBoot> {
  const file = join(r.dir, `${d.name}.xml`);
  const consoleLog = join(r.dir, `${d.name}.console.log`);
  writeFileSync(file, floorDomainXml({ ...d, guest: r.guest, consoleLog }));
  const t0 = now();
  r.started.add(d.name);
  await r.runner.run({ argv: [...VIRSH, 'create', file], timeoutMs });
  const createMs = now() - t0;
  await r.runner.run(ipCommand(linkSetNetns(d.tap, r.netns)));
  await r.runner.run(ipCommand(['link', 'set', 'dev', d.tap, 'master', BRIDGE, 'up'], r.netns));
  const leaseAt = await r.leases.seen(d.mac, timeoutMs).catch((e: Error) => {
    const tail = readFileSync(consoleLog, 'utf8').trimEnd().split('\n').slice(-8);
    throw new Error(`${e.message}; ${d.name} console:\n  ${tail.join('\n  ')}`);
  });
  return { name: d.name, mac: d.mac, createMs, leaseMs: leaseAt - t0 };
}

/**
 * Sets up the floor for `n` domains: a namespace `kbf<hex>` with a bridge and dnsmasq,
 * and a temp dir for the XML files, console logs and the lease file.
 */
export async function createFloor(
  runner: CommandRunner,
  guest: FloorGuest,
  n: number,
): Promise<Floor> {
  const id = randomBytes(2).toString('hex');
  const netns = `kbf${id}`;
  const dir = mkdtempSync(join(tmpdir(), `kumo-boot-floor-${id}-`));
  chmodSync(dir, 0o755); // qemu runs as libvirt-qemu and reads the XML's paths
  const domains: FloorDomain[] = Array.from({ length: n }, (_, i) => ({
    name: `kumo-bench-floor-${id}-${i}`,
    mac: `52:54:00:${id.slice(0, 2)}:${id.slice(2)}:${i.toString(16).padStart(2, '0')}`,
    tap: `kbf${id}t${i}`,
  }));
  const r: FloorRun = {
    runner,
    guest,
    netns,
    dir,
    leases: watchLeases(join(dir, 'leases')),
    started: new Set(),
  };
  const close = async () => {
    r.leases.stop();
    for (const name of r.started)
      await runner.run({ argv: [...VIRSH, 'destroy', name] }).catch(() => {});
    killDnsmasqUnder(dir);
    await runner.run({ argv: ['ip', 'netns', 'del', netns] }).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  const macs = domains.map((d) => d.mac);
  await startNetwork(runner, netns, dir, macs).catch(async (e: Error) => {
    await close();
    throw e;
  });
  return {
    netns,
    run: (concurrency, timeoutMs) =>
      pool(n, concurrency, (i) => bootDomain(r, domains[i] as FloorDomain, timeoutMs)),
    close,
  };
}
