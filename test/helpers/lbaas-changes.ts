/**
 * Member churn and process checks for the LBaaS lab's hitless-reload and kill -9 scenarios
 * (and bench/lbaas-*): twenty member changes through the API, each waited for until the
 * hosting agent served it; the haproxy processes of a namespace (a reload's new one) or of a
 * config path; the agent's logged resyncs; a request loop that stops whatever the scenario does.
 *
 * Invariant: every change goes through kumo-api like any client's and is served (the pool
 * settled, or a removed member gone from haproxy.cfg) before the next one is made, so twenty
 * changes are twenty reloads.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { runCommand } from './cluster.ts';
import { waitFor } from './env.ts';
import type { LabHost } from './lab.ts';
import type { Backend, LbaasLab } from './lbaas-lab.ts';
import { type Obj, putOk, waitSettled } from './lbaas-status.ts';
import type { RequestLoop } from './lbaas-traffic.ts';

/** Runs `fn` once the loop has answered a few requests; the loop stops if `fn` throws. */
export async function whileLooping<T>(loop: RequestLoop, fn: () => Promise<T>): Promise<T> {
  try {
    await waitFor('the loop runs', () => loop.answered() >= 3);
    return await fn();
  } catch (e) {
    await loop.stop();
    throw e;
  }
}

/** The pids of the haproxy processes in `netns`, sorted. */
export async function haproxyPids(netns: string): Promise<string[]> {
  const out = (await runCommand(['ip', 'netns', 'pids', netns])).stdout;
  const comm = (pid: string) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  return out
    .split('\n')
    .filter((pid) => pid !== '' && comm(pid) === 'haproxy')
    .sort();
}

/** The pids of every process whose command line names `path` (e.g. a pool's haproxy.cfg). */
export function pidsWith(path: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(path);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * The pid a pool's haproxy.pid names once it is one not in `seen` and that process runs
 * (a reload's new process; `seen` gains it). Read from the pid file, not the namespace's
 * process list: `-D` forks, and the short-lived parent would pass for the new process.
 */
export async function newHaproxyPid(pidfile: string, seen: Set<string>): Promise<string> {
  const pid = await waitFor(`a new haproxy pid in ${pidfile}`, async () => {
    let text = '';
    try {
      text = readFileSync(pidfile, 'utf8').trim();
    } catch {
      return undefined;
    }
    if (!/^\d+$/.test(text) || seen.has(text)) return undefined;
    return existsSync(`/proc/${text}`) ? text : undefined;
  });
  seen.add(pid);
  return pid;
}

/** The times of the `full resync` runs an agent logged at or after `since`. */
export function resyncsSince(l: LbaasLab, h: LabHost, since: number): number[] {
  return l.c
    .log(`kumo-lbaas-agent-${l.hostName(h)}`)
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { time: number; msg: string })
    .filter((x) => x.msg === 'full resync' && x.time >= since)
    .map((x) => x.time);
}

/** Waits until the agent started a second full resync after `since`: the first one finished. */
export async function waitResyncedSince(l: LbaasLab, h: LabHost, since: number): Promise<void> {
  await waitFor(
    `a full resync of ${h.name}'s LBaaS agent done`,
    () => resyncsSince(l, h, since).length >= 2,
    30_000,
  );
}

/** The pool's haproxy.cfg on its hosting host. */
export async function hostedCfg(l: LbaasLab, poolId: string): Promise<string> {
  const h = await l.hostingHost(poolId);
  assert.ok(h, 'the pool is hosted');
  const path = l.haproxyCfg(h, poolId);
  assert.ok(path, 'the hosting agent wrote haproxy.cfg');
  return path;
}

/**
 * Weight updates and admin-state flips of members `ids`, and `extra` added as a third member,
 * reweighted twice and removed: ten changes, twice, each one changing haproxy.cfg (a reload), `served()` after each (once the pool
 * settled). Resolves with the count.
 */
export async function twentyMemberChanges(
  l: LbaasLab,
  poolId: string,
  [id1, id2]: [string, string],
  extra: Backend,
  served: () => Promise<void> = async () => {},
): Promise<number> {
  const [m1, m2] = [`/v2.0/lb/members/${id1}`, `/v2.0/lb/members/${id2}`];
  let third = '';
  const add = async () => {
    const res = await l.c.http('POST', '/v2.0/lb/members', {
      member: { pool_id: poolId, address: extra.address, protocol_port: 80 },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    third = (res.body as { member: Obj }).member.id;
  };
  const remove = async () => {
    const res = await l.c.http('DELETE', `/v2.0/lb/members/${third}`);
    assert.equal(res.status, 204, JSON.stringify(res.body));
    const path = await hostedCfg(l, poolId);
    const gone = () => !readFileSync(path, 'utf8').includes(`${extra.address}:80`);
    await waitFor(`${extra.name} gone from haproxy.cfg`, gone);
  };
  const changes: (() => Promise<unknown>)[] = [
    () => putOk(l.c, m1, { member: { weight: 2 } }),
    () => putOk(l.c, m2, { member: { admin_state_up: false } }),
    () => putOk(l.c, m2, { member: { admin_state_up: true } }),
    add,
    () => putOk(l.c, `/v2.0/lb/members/${third}`, { member: { weight: 3 } }),
    () => putOk(l.c, m1, { member: { weight: 1 } }),
    () => putOk(l.c, m1, { member: { admin_state_up: false } }),
    () => putOk(l.c, m1, { member: { admin_state_up: true } }),
    () => putOk(l.c, `/v2.0/lb/members/${third}`, { member: { weight: 1 } }),
    remove,
  ];
  for (const change of [...changes, ...changes]) {
    await change();
    await waitSettled(l.c, poolId);
    await served();
  }
  return changes.length * 2;
}
