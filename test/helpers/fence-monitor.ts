/**
 * The L3 fencing invariant measured at its source. Both copies of a router's gateway port
 * have the same MAC (one API port), so who answers ARP for the gateway or a floating IP is
 * decided on each network host: its `qg-` port is "live" there when its OVS Port sits on
 * br-int with a tag other than 4095 (the dead VLAN) AND its device is up in the router's
 * namespace holding the gateway address AND the host's ovs-vswitchd runs (a stopped one
 * leaves its taps in place, persistent, but no datapath behind them: nothing answers). The monitor samples every host every ~100 ms,
 * with the API's binding of the gateway port, into a timeline.
 *
 * Invariant: a sample's state was read between its `t0` and `t1`; a check that fails for
 * a reason other than "the thing is not there" is recorded as `error` and counted as live,
 * so a broken probe can only make the fence look worse, never better.
 */
import { readFileSync } from 'node:fs';

export type Liveness = 'live' | 'dead' | 'error';

export interface FenceHost {
  name: string;
  /** ovs-vsctl against this host's database. */
  vsctl(args: string[]): Promise<string>;
  /** Runs argv in a namespace; rejects with stderr. */
  exec(netns: string, argv: string[]): Promise<string>;
  /** The router's namespace on this host. */
  routerNetns: string;
  /** ovs-vswitchd's pid file on this host. */
  vswitchdPidfile: string;
}

export interface FenceSample {
  t0: number;
  t1: number;
  state: Record<string, Liveness>;
  /** Why a host is not live (absent when live). */
  why: Record<string, string>;
  /** The host the API binds the gateway port to (null: none or unreadable). */
  binding: string | null;
}

export interface FenceMonitorOptions {
  hosts: FenceHost[];
  /** The qg- device (also its OVS Port's name). */
  device: string;
  /** The router's gateway IP on qg-. */
  address: string;
  binding(): Promise<string | null>;
  intervalMs?: number;
}

/** What the commands say when a port, namespace or device is not (yet, any more) there. */
const ABSENT =
  /no port named|no row|Cannot open network namespace|does not exist|No such file|not found/i;

/** One ovs-vsctl: the Port's tag, then its bridge (fails "no port named" when absent). */
async function ovsSide(h: FenceHost, device: string): Promise<[Liveness, string]> {
  const find = ['--bare', '--columns=tag', 'find', 'Port', `name=${device}`];
  const out = await h.vsctl([...find, '--', 'port-to-br', device]);
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const bridge = lines.at(-1)?.trim();
  const tag = lines.length > 1 ? lines[0]?.trim() : '';
  if (bridge !== 'br-int') return ['dead', `on ${bridge}`];
  if (tag === '4095') return ['dead', 'tag 4095'];
  return ['live', ''];
}

/** Whether the ovs-vswitchd its pid file names still runs (a zombie or a reused pid: no). */
export function vswitchdRuns(pidfile: string): boolean {
  try {
    const pid = readFileSync(pidfile, 'utf8').trim();
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('ovs-vswitchd');
  } catch {
    return false;
  }
}

interface IpAddr {
  flags?: string[];
  addr_info?: { local?: string }[];
}

async function nsSide(h: FenceHost, device: string, address: string): Promise<[Liveness, string]> {
  const out = await h.exec(h.routerNetns, ['ip', '-j', 'addr', 'show', 'dev', device]);
  const link = (JSON.parse(out) as IpAddr[])[0];
  if (!link?.flags?.includes('UP')) return ['dead', 'device down'];
  if (!link.addr_info?.some((a) => a.local === address)) return ['dead', 'no gateway address'];
  return ['live', ''];
}

const guarded = (p: Promise<[Liveness, string]>): Promise<[Liveness, string]> =>
  p.catch((e: Error) =>
    ABSENT.test(e.message) ? ['dead', e.message.slice(-80)] : ['error', e.message.slice(-200)],
  );

/** One host's liveness now: both sides must be live; an error on either counts as live. */
export async function probeHost(
  h: FenceHost,
  device: string,
  address: string,
): Promise<[Liveness, string]> {
  if (!vswitchdRuns(h.vswitchdPidfile)) return ['dead', 'ovs-vswitchd not running'];
  const [ovs, ns] = await Promise.all([
    guarded(ovsSide(h, device)),
    guarded(nsSide(h, device, address)),
  ]);
  if (ovs[0] === 'dead' || ns[0] === 'dead')
    return ['dead', [ovs[1], ns[1]].filter(Boolean).join('; ')];
  if (ovs[0] === 'error' || ns[0] === 'error')
    return ['error', [ovs[1], ns[1]].filter(Boolean).join('; ')];
  return ['live', ''];
}

export interface FenceMonitor {
  readonly samples: FenceSample[];
  stop(): Promise<FenceSample[]>;
}

async function takeSample(o: FenceMonitorOptions): Promise<FenceSample> {
  const t0 = Date.now();
  const [binding, ...probes] = await Promise.all([
    o.binding().catch(() => null),
    ...o.hosts.map((h) => probeHost(h, o.device, o.address)),
  ]);
  const sample: FenceSample = { t0, t1: Date.now(), state: {}, why: {}, binding };
  o.hosts.forEach((h, i) => {
    const [state, why] = probes[i] as [Liveness, string];
    sample.state[h.name] = state;
    if (why) sample.why[h.name] = why;
  });
  return sample;
}

/** Samples until stopped, one sample at a time, starting one every `intervalMs` (100). */
export function startFenceMonitor(o: FenceMonitorOptions): FenceMonitor {
  const samples: FenceSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = await takeSample(o);
      samples.push(s);
      const wait = (o.intervalMs ?? 100) - (Date.now() - s.t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

export const liveHosts = (s: FenceSample) =>
  Object.keys(s.state).filter((h) => s.state[h] !== 'dead');

/**
 * Samples where more than one host was live (errors count as live) and whose read
 * interval does not overlap `window` (the binding change until the old host's OVS agent's
 * first sync after it; null: no exception at all).
 */
export function fenceViolations(
  samples: readonly FenceSample[],
  window: { from: number; to: number } | null,
): FenceSample[] {
  return samples.filter(
    (s) => liveHosts(s).length > 1 && !(window && s.t1 >= window.from && s.t0 <= window.to),
  );
}

/** The timeline as lines, one per change of state or binding, times relative to `origin`. */
export function timeline(samples: readonly FenceSample[], origin: number): string[] {
  const lines: string[] = [];
  let last = '';
  for (const s of samples) {
    const key = `${JSON.stringify(s.state)} binding=${s.binding}`;
    if (key === last) continue;
    last = key;
    const why = Object.entries(s.why).map(([h, w]) => `${h}: ${w}`);
    const at = ((s.t0 - origin) / 1000).toFixed(2);
    lines.push(`+${at}s ${key}${why.length ? ` (${why.join(' | ')})` : ''}`);
  }
  return lines;
}
