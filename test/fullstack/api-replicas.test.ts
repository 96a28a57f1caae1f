/**
 * Two kumo-api replicas behind HAProxy on one PostgreSQL database and one broker vhost,
 * with a real OVS agent and DHCP agent on a lab host (issue 18):
 * - etc/haproxy-kumo-api.cfg is what the test's HAProxy config function renders, and
 *   HAProxy accepts it;
 * - a 200-request create/delete loop of ports through HAProxy, with the replica holding
 *   every periodic job's lease SIGKILLed partway: every request succeeds or gets a clear
 *   error (HAProxy's 5xx page, or a connection error), no port name exists twice, every
 *   successful create exists exactly once unless the loop deleted it, every failed one
 *   exists at most once; both replicas served RPCs to the agents;
 * - the survivor holds every lease within one lease period (+ a scheduling margin) of the
 *   kill, and its DHCP sweep really runs (a network unbound by hand is bound again by it);
 * - the DHCP agent serves the ports that remain (its dnsmasq hosts file);
 * - the killed replica, restarted, serves through HAProxy again and does not take the
 *   leases back while the survivor renews them; deleting what is left leaves nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDb } from '../../api/db/index.ts';
import { listLeases } from '../../api/db/leases.ts';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { showStat } from '../../host/haproxy/stats.ts';
import { renderApiHaproxy, SAMPLE } from '../helpers/api-haproxy.ts';
import { type ApiReplicas, startApiReplicas } from '../helpers/api-replicas.ts';
import { ADMIN_TOKEN, Cluster, ovsOf, runCommand } from '../helpers/cluster.ts';
import { REPO, waitFor } from '../helpers/env.ts';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';

const LEASE_S = 3;
/** A lease's takeover: its expiry, then the survivor's next claim and the database round trips. */
const TAKEOVER_MARGIN_MS = 1500;
const REQUESTS = 200;
const KILL_AT = 70;
/** Every periodic job kumo-api runs with the extra config below (api/jobs.ts). */
const JOBS = [
  'compute-sweep',
  'dhcp-sweep',
  'l3-sweep',
  'lbaas-sweep',
  'reclaim',
  'token-key-rotation',
];

type Outcome = { kind: 'ok' } | { kind: 'error'; reason: string };
interface Step {
  op: 'create' | 'delete';
  name: string;
  outcome: Outcome;
}

test('etc/haproxy-kumo-api.cfg is the rendered sample, and haproxy accepts it', async () => {
  const path = join(REPO, 'etc', 'haproxy-kumo-api.cfg');
  assert.equal(readFileSync(path, 'utf8'), renderApiHaproxy(SAMPLE));
  const check = await runCommand(['haproxy', '-c', '-f', path]);
  assert.equal(check.code, 0, check.stderr);
});

describe('two kumo-api replicas behind HAProxy', { timeout: 240_000 }, () => {
  let lab: Lab;
  let c: Cluster;
  let reps: ApiReplicas;
  let db: ReturnType<typeof openDb>;
  let net: Network;
  let killed: number;
  let survivor: number;
  const steps: Step[] = [];
  /** Port id and MAC by name, for every create answered 201. */
  const created = new Map<string, { id: string; mac: string }>();
  let takeover: Promise<unknown>;

  const http = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${reps.url}${path}`, {
      method,
      headers: {
        'x-auth-token': ADMIN_TOKEN,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, text, body: text.startsWith('{') ? JSON.parse(text) : null };
  };
  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await http('POST', path, { [key]: body });
    assert.equal(res.status, 201, res.text);
    return res.body[key] as T;
  };
  const loopPorts = async (): Promise<Port[]> => {
    const res = await http('GET', `/v2.0/ports?network_id=${net.id}`);
    assert.equal(res.status, 200, res.text);
    return (res.body.ports as Port[]).filter((p) => p.name.startsWith('loop-'));
  };
  const holderOf = (i: number) => `:${reps.replicas[i]?.pid()}:`;
  const hostsFile = () => join(c.dir.path, 'dhcp', net.id, 'host');
  const log = (i: number) => readFileSync(reps.replicas[i]?.log as string, 'utf8');
  const heldBy = async (i: number) => {
    const leases = await listLeases(db);
    return (
      JOBS.every((j) => leases.some((l) => l.name === j)) &&
      leases.every((l) => l.holder.includes(holderOf(i)) && l.remaining_ms > 0)
    );
  };

  before(async () => {
    lab = await createLab({ hosts: 1 });
    c = await Cluster.create('postgres', ovsOf(lab.hosts[0] as LabHost));
    db = openDb(c.db.url);
    reps = await startApiReplicas({
      n: 2,
      dir: join(c.dir.path, 'replicas'),
      dbConnection: c.db.connection,
      transportUrl: c.vhost.transportUrl,
      leaseSeconds: LEASE_S,
      agentDownTime: c.timing.agentDownTime,
      extraConfig: [
        '[identity]',
        'key_rotation_interval = 24',
        '[compute]',
        'reclaim_instance_interval = 3600',
      ],
    });
    c.startAgent('ovs');
    c.startAgent('dhcp');
    await waitFor('the DHCP agent alive', async () => {
      const res = await http('GET', '/v2.0/agents?agent_type=DHCP%20agent&alive=true');
      return (res.body.agents as Agent[]).length === 1;
    });
    net = await post<Network>('/v2.0/networks', 'network', { name: 'replicas-net' });
    await post('/v2.0/subnets', 'subnet', {
      network_id: net.id,
      cidr: '10.30.0.0/23',
      ip_version: 4,
    });
  });
  after(async () => {
    await reps?.stop();
    await db?.close();
    await c?.cleanup();
    await lab?.destroy();
  });

  /** One request of the loop; the outcome is recorded, an unclear error fails the test. */
  const request = async (op: Step['op'], name: string): Promise<Outcome> => {
    try {
      const res =
        op === 'create'
          ? await http('POST', '/v2.0/ports', { port: { network_id: net.id, name } })
          : await http('DELETE', `/v2.0/ports/${created.get(name)?.id}`);
      if (res.status === 201)
        created.set(name, { id: res.body.port.id, mac: res.body.port.mac_address });
      if (res.status === 201 || res.status === 204) return { kind: 'ok' };
      // HAProxy's own answer when the replica died with the request: its HTML error page.
      assert.match(res.text, /<h1>50[234] /, `${op} ${name}: ${res.status} ${res.text}`);
      return { kind: 'error', reason: `HAProxy ${res.status}` };
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      return { kind: 'error', reason: `connection: ${(e as Error).message}` };
    }
  };

  test('the replica holding every lease is SIGKILLed during a 200-request loop', async () => {
    const holder = await waitFor('one replica to hold every lease', async () => {
      for (const i of [0, 1]) if (await heldBy(i)) return { i };
    });
    killed = holder.i;
    survivor = 1 - killed;
    const alive: string[] = [];
    let kill: Promise<void> | undefined;
    for (let k = 0; k < REQUESTS; k++) {
      if (k === KILL_AT) {
        kill = reps.kill(killed);
        const bound = LEASE_S * 1000 + TAKEOVER_MARGIN_MS;
        takeover = waitFor(
          `the survivor to hold every lease within one lease period (${LEASE_S} s) of the kill, plus ${TAKEOVER_MARGIN_MS} ms for its claim`,
          () => heldBy(survivor),
          bound,
          50,
        );
        takeover.catch(() => {});
      }
      const op = k % 3 === 2 && alive.length > 0 ? 'delete' : 'create';
      const name = op === 'create' ? `loop-${k}` : (alive.shift() as string);
      const outcome = await request(op, name);
      if (op === 'create' && outcome.kind === 'ok') alive.push(name);
      steps.push({ op, name, outcome });
      await sleep(20);
    }
    await kill;
    assert.equal(steps.length, REQUESTS);
    assert.equal(reps.replicas[killed]?.pid(), undefined, 'the killed replica is gone');
    const errors = steps.filter((s) => s.outcome.kind === 'error');
    assert.ok(errors.length < 10, `few requests met the kill: ${JSON.stringify(errors)}`);
  });

  test('the survivor holds every lease within one lease period of the kill', async () => {
    await takeover;
    assert.ok(await heldBy(survivor));
    const taken = log(survivor)
      .split('\n')
      .filter((l) => l.includes('"msg":"lease taken"'));
    for (const job of JOBS)
      assert.ok(
        taken.some((l) => l.includes(`"job":"${job}"`)),
        `the survivor logged taking ${job}`,
      );
  });

  test('no duplicates: successful creates exist once unless deleted, failed ones at most once', async () => {
    const ports = await loopPorts();
    const byName = Map.groupBy(ports, (p) => p.name);
    for (const [name, same] of byName) assert.equal(same.length, 1, `${name} exists once`);
    const deleted = new Set(
      steps.filter((s) => s.op === 'delete' && s.outcome.kind === 'ok').map((s) => s.name),
    );
    const deleteTried = new Set(steps.filter((s) => s.op === 'delete').map((s) => s.name));
    for (const s of steps.filter((s) => s.op === 'create')) {
      const exists = byName.has(s.name);
      if (s.outcome.kind === 'ok' && deleted.has(s.name)) assert.ok(!exists, `${s.name} deleted`);
      else if (s.outcome.kind === 'ok' && !deleteTried.has(s.name))
        assert.ok(exists, `${s.name} was created`);
      // A failed create, or a failed delete, may or may not have been committed: at most once.
    }
    const names = new Set(steps.map((s) => s.name));
    for (const p of ports) assert.ok(names.has(p.name), `${p.name} comes from the loop`);
  });

  test('both replicas answered the agents RPCs', () => {
    for (const i of [0, 1])
      assert.match(log(i), /"msg":"rpc served"/, `replica ${i} served RPCs from q-plugin`);
  });

  test('the survivor runs the DHCP sweep: a network unbound by hand is bound again', async () => {
    const agents = (await http('GET', '/v2.0/agents?agent_type=DHCP%20agent')).body
      .agents as Agent[];
    const agent = agents[0] as Agent;
    const res = await http('DELETE', `/v2.0/agents/${agent.id}/dhcp-networks/${net.id}`);
    assert.equal(res.status, 204, res.text);
    await waitFor(
      'the survivor sweep to bind the network again',
      async () => {
        const hosting = await http('GET', `/v2.0/networks/${net.id}/dhcp-agents`);
        return (hosting.body.agents as Agent[]).some((a) => a.id === agent.id);
      },
      LEASE_S * 1000 * 3,
      200,
    );
    const sweepLines = log(survivor)
      .split('\n')
      .filter((l) => l.includes('"msg":"DHCP bindings changed by the sweep"'));
    assert.ok(
      sweepLines.some((l) => l.includes(net.id)),
      'the survivor sweep did it',
    );
  });

  test('the DHCP agent serves exactly the ports that remain', async () => {
    const macs = new Set((await loopPorts()).map((p) => p.mac_address));
    const gone = [...created.values()].map((p) => p.mac).filter((m) => !macs.has(m));
    assert.ok(macs.size > 0 && gone.length > 0);
    await waitFor(
      `dnsmasq's hosts file to list the ${macs.size} remaining ports and none of ${gone.length} deleted`,
      () => {
        const text = readFileSync(hostsFile(), 'utf8');
        return [...macs].every((m) => text.includes(m)) && !gone.some((m) => text.includes(m));
      },
      30_000,
      200,
    );
  });

  test('the restarted replica serves through HAProxy and leaves the leases to the survivor', async () => {
    await reps.start(killed);
    await reps.waitServing(killed);
    const served = async () =>
      (await showStat(reps.statsSocket)).find(
        (r) => r.pxname === 'kumo-api' && r.svname === `api-${killed}`,
      )?.stot ?? 0;
    const before = await served();
    for (let k = 0; k < 10; k++) assert.equal((await http('GET', '/v2.0/networks')).status, 200);
    assert.ok((await served()) > before, 'HAProxy sent requests to the restarted replica');
    // Three lease periods, past the restarted replica's start grace (agent_down_time).
    const until = Date.now() + 3 * LEASE_S * 1000;
    while (Date.now() < until) {
      assert.ok(await heldBy(survivor), 'the survivor keeps every lease');
      await sleep(200);
    }
    const sinceRestart = log(killed).split('"msg":"periodic jobs start under leases"').at(-1);
    assert.doesNotMatch(sinceRestart ?? '', /lease taken/, 'the restarted replica took no lease');
  });

  test('deleting what is left leaves no port and no dnsmasq host behind', async () => {
    for (const p of await loopPorts())
      assert.equal((await http('DELETE', `/v2.0/ports/${p.id}`)).status, 204);
    assert.deepEqual(await loopPorts(), []);
    const macs = [...created.values()].map((p) => p.mac);
    await waitFor('the hosts file to list none of the loop ports', () => {
      const text = readFileSync(hostsFile(), 'utf8');
      return !macs.some((m) => text.includes(m));
    });
  });
});
