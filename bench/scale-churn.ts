/**
 * bench/scale's API load: networks with a DHCP subnet (scheduled to simulated DHCP agents),
 * and a steady port churn through the API's front door (HAProxy in the cluster stack),
 * as an operator's or nova's requests would come: `--churn` operations per second, port
 * creates bound to a random simulated host (`binding:host_id`, device_owner compute:nova)
 * and, once a port has lived `--port-life` seconds, its delete. A created port is plugged on
 * its host (the simulator's stand-in for nova plugging the VIF into br-int, which wakes the
 * OVS agent); a port is unplugged just before its delete, as nova unplugs before Neutron's
 * delete. Both make the API hint agents as in production (DHCP agents of the network,
 * security group members' hosts, the L2 fanout to every OVS agent on delete).
 *
 * Invariant: every request's latency (send → full response) and every failure is recorded;
 * a failed create is not retried and a failed delete is retried by the next tick, so the
 * port population stays bounded.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Api {
  url: string;
  token: string;
}

export async function request(api: Api, method: string, path: string, body?: unknown) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: {
      'X-Auth-Token': api.token,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function created<T>(api: Api, path: string, key: string, body: unknown): Promise<T> {
  const res = await request(api, 'POST', path, { [key]: body });
  if (res.status !== 201)
    throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res.body[key] as T;
}

/** A network with one DHCP-enabled /22 subnet (number `n` picks 10.<n>.<0-3>.0/22). */
export async function createNetwork(api: Api, n: number): Promise<string> {
  const net = await created<{ id: string }>(api, '/v2.0/networks', 'network', {
    name: `scale-net-${n}`,
  });
  const hi = 64 + Math.floor(n / 64);
  await created(api, '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    cidr: `10.${hi}.${(n % 64) * 4}.0/22`,
    ip_version: 4,
  });
  return net.id;
}

export interface ChurnHooks {
  hosts(): readonly string[];
  networks(): readonly string[];
  plug(host: string, port: string): void;
  unplug(host: string, port: string): void;
}

export interface ChurnWindow {
  create: number[];
  delete: number[];
  errors: string[];
}

/** Runs the churn until `stop()`; `window()` starts a new latency window and returns the old. */
export function startChurn(api: Api, hooks: ChurnHooks, rate: number, lifeS: number) {
  const live: { id: string; host: string; at: number }[] = [];
  let w: ChurnWindow = { create: [], delete: [], errors: [] };
  let running = true;
  let inFlight = 0;

  const timed = async (list: number[], what: string, f: () => Promise<number>, want: number) => {
    const t0 = performance.now();
    try {
      const status = await f();
      if (status !== want) w.errors.push(`${what}: HTTP ${status}`);
      else list.push(performance.now() - t0);
      return status === want;
    } catch (e) {
      w.errors.push(`${what}: ${(e as Error).message}`);
      return false;
    }
  };

  const createOne = async () => {
    const hosts = hooks.hosts();
    const nets = hooks.networks();
    if (hosts.length === 0 || nets.length === 0) return;
    const host = hosts[Math.floor(Math.random() * hosts.length)] as string;
    const network_id = nets[Math.floor(Math.random() * nets.length)] as string;
    let id = '';
    const body = {
      port: {
        network_id,
        'binding:host_id': host,
        device_owner: 'compute:nova',
        device_id: randomUUID(),
      },
    };
    const ok = await timed(
      w.create,
      'create port',
      async () => {
        const res = await request(api, 'POST', '/v2.0/ports', body);
        id = (res.body.port as { id?: string } | undefined)?.id ?? '';
        return res.status;
      },
      201,
    );
    if (!ok || !id) return;
    live.push({ id, host, at: performance.now() });
    hooks.plug(host, id);
  };

  const deleteOne = async () => {
    const p = live.shift();
    if (!p) return;
    hooks.unplug(p.host, p.id);
    const ok = await timed(
      w.delete,
      'delete port',
      async () => (await request(api, 'DELETE', `/v2.0/ports/${p.id}`)).status,
      204,
    );
    if (!ok) live.push(p);
  };

  const loop = (async () => {
    const stepMs = 1000 / rate;
    let next = performance.now();
    while (running) {
      const old = live[0] && performance.now() - live[0].at > lifeS * 1000;
      inFlight++;
      void (old ? deleteOne() : createOne()).finally(() => inFlight--);
      next += stepMs;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();

  return {
    window(): ChurnWindow {
      const old = w;
      w = { create: [], delete: [], errors: [] };
      return old;
    },
    livePorts: () => live.length,
    /** Stops the churn once its requests in flight ended (the ports go with the database). */
    async stop() {
      running = false;
      await loop;
      while (inFlight > 0) await sleep(50);
    },
  };
}
