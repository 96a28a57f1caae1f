/**
 * Metrics against a real lab and a real Prometheus: kumo-api and the six agents (one lab
 * host with its own Open vSwitch) run with `[DEFAULT] metrics_port`, each daemon on its
 * offset; every endpoint's exposition passes `promtool check metrics` with no lint; then
 * Debian's Prometheus scrapes all seven for one minute, and its HTTP API answers `up` = 1
 * for each and a Kumo metric of each daemon (reconcile durations for every agent, agents
 * alive and heartbeat lag for kumo-api).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { METRICS_PORT_OFFSETS } from '../../core/metrics.ts';
import { Cluster, freePort, freePortRange, ovsOf } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';

const SCRAPE_S = 5;
const WATCH_MS = 60_000;
const DAEMONS = Object.keys(METRICS_PORT_OFFSETS) as (keyof typeof METRICS_PORT_OFFSETS)[];

describe('metrics: promtool on every endpoint, a real Prometheus for a minute', {
  timeout: 300_000,
}, () => {
  let lab: Lab;
  let c: Cluster;
  let base: number;
  let prom: ChildProcess | undefined;
  let promPort: number;
  const target = (d: (typeof DAEMONS)[number]) => `127.0.0.1:${base + METRICS_PORT_OFFSETS[d]}`;

  before(async () => {
    lab = await createLab({ hosts: 1 });
    base = await freePortRange(DAEMONS.length);
    c = await Cluster.create('sqlite', ovsOf(lab.hosts[0] as LabHost), [
      '[DEFAULT]',
      `metrics_port = ${base}`,
    ]);
    await c.startAll();
  });
  after(async () => {
    prom?.kill('SIGKILL');
    await c?.cleanup();
    await lab?.destroy();
  });

  test('every daemon serves /metrics that promtool passes without lint', async () => {
    for (const d of DAEMONS) {
      const res = await fetch(`http://${target(d)}/metrics`);
      assert.equal(res.status, 200, d);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /^# TYPE kumo_/m, `${d} exposes Kumo's metrics`);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.error, undefined, `promtool: ${check.error}`);
      assert.deepEqual(
        { status: check.status, output: `${check.stdout}${check.stderr}` },
        { status: 0, output: '' },
        d,
      );
    }
  });

  test('Prometheus scrapes the lab for a minute and answers for each daemon', async () => {
    promPort = await freePort();
    const config = join(c.dir.path, 'prometheus.yml');
    const jobs = DAEMONS.map(
      (d) => `  - job_name: ${d}\n    static_configs:\n      - targets: ['${target(d)}']`,
    );
    writeFileSync(
      config,
      `global:\n  scrape_interval: ${SCRAPE_S}s\n  scrape_timeout: 4s\nscrape_configs:\n${jobs.join('\n')}\n`,
    );
    prom = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(c.dir.path, 'prometheus')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    const query = async (q: string) => {
      const url = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`;
      const body = (await (await fetch(url)).json()) as {
        status: string;
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      assert.equal(body.status, 'success', q);
      return body.data.result;
    };
    const ready = () =>
      fetch(`http://127.0.0.1:${promPort}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
    await waitFor(
      'Prometheus ready',
      async () => prom?.exitCode === null && (await ready()),
      30_000,
    );
    await sleep(WATCH_MS);
    const up = await query('up');
    assert.deepEqual(
      up.map((s) => [s.metric.job, s.value[1]]).sort(),
      DAEMONS.map((d) => [d, '1']).sort(),
    );
    const scrapes = await query(`count_over_time(up[${WATCH_MS / 1000}s])`);
    for (const s of scrapes)
      assert.ok(Number(s.value[1]) >= 10, `${s.metric.job}: ${s.value[1]} scrapes in a minute`);
    for (const d of DAEMONS.filter((x) => x !== 'kumo-api')) {
      const r = await query(`sum(kumo_reconcile_duration_seconds_count{job="${d}"})`);
      assert.ok(Number(r[0]?.value[1]) > 0, `${d} reported reconciles: ${JSON.stringify(r)}`);
    }
    const alive = await query('sum(kumo_agents{job="kumo-api",state="alive"})');
    assert.equal(alive[0]?.value[1], '6');
    const lag = await query('sum(kumo_heartbeat_lag_seconds_count{job="kumo-api"})');
    assert.ok(Number(lag[0]?.value[1]) > 0, 'heartbeats observed');
  });
});
