#!/usr/bin/env node
/**
 * bench/dashboard: how soon the dashboard's first page (Agents) is interactive with
 * `--agents` agents listed, in headless Chromium (Debian's, through playwright-core),
 * against a static HTML table of the same rows served from the same machine.
 *
 *   node bench/dashboard.ts [--agents 100] [--runs 10]
 *
 * Standalone: a real kumo-api (bench/heartbeat-stack.ts: its own vhost, SQLite, port) with
 * `--agents` compute agents registered by report_state. Each run opens a fresh browser
 * context (empty cache) holding an admin session, loads /dashboard#agents and stops the
 * clock when the page is interactive: every agent's row is drawn and its Disable button
 * is enabled. The time is the page's own performance.now() at that moment (from the start
 * of navigation). The baseline is the same number of rows as plain HTML (no script),
 * timed the same way to its last row: the floor any page listing them has.
 *
 * Output: median and worst of each, the 1 s target, and last `ratio static/dashboard: X`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import type { Browser } from 'playwright-core';
import { REPORTS_TOPIC } from '../contracts/messages.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { hostName, prefill, publisher, report } from './heartbeat-reports.ts';
import { createHeartbeatStack, type HeartbeatStack } from './heartbeat-stack.ts';
import { logTail, runBench } from './lib.ts';

const { values: opts } = parseArgs({
  options: {
    agents: { type: 'string', default: '100' },
    runs: { type: 'string', default: '10' },
  },
  strict: true,
});
const AGENTS = Number(opts.agents);
const RUNS = Number(opts.runs);
if (!(AGENTS > 0 && RUNS > 0)) throw new Error('--agents and --runs must be positive');

let stack: HeartbeatStack | undefined;
let browser: Browser | undefined;

/**
 * One cold load of `url`; ms from navigation start until `rows` agent rows are drawn (and,
 * with `buttons`, every Disable button is enabled). A function, not a string: the
 * dashboard's CSP forbids evaluating strings.
 */
async function timeLoad(url: string, session: unknown, buttons: boolean): Promise<number> {
  const context = await (browser as Browser).newContext();
  try {
    const page = await context.newPage();
    await page.addInitScript((s) => {
      sessionStorage.setItem('kumo.session', JSON.stringify(s));
    }, session);
    await page.goto(url, { waitUntil: 'commit' });
    const handle = await page.waitForFunction(
      ({ rows, buttons }) => {
        if (document.querySelectorAll('#agents tbody tr').length !== rows) return 0;
        const disable = [...document.querySelectorAll('#agents button[data-testid=disable]')];
        if (
          buttons &&
          (disable.length !== rows || disable.some((b) => (b as HTMLButtonElement).disabled))
        )
          return 0;
        return performance.now();
      },
      { rows: AGENTS, buttons },
      { polling: 'raf', timeout: 30_000 },
    );
    return Number(await handle.jsonValue());
  } finally {
    await context.close();
  }
}

function staticTable(n: number): string {
  const rows = Array.from(
    { length: n },
    (_, i) =>
      `<tr><td>Compute agent</td><td>${hostName('dash', i)}</td><td>alive</td><td>UP</td>` +
      '<td>nothing</td><td>none</td><td><button>Disable</button> <button>Delete</button></td></tr>',
  );
  return `<!doctype html><html><head><meta charset="utf-8"><title>static</title></head><body>
<table id="agents"><tbody>${rows.join('')}</tbody></table></body></html>`;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)] as number, worst: s[s.length - 1] as number };
};

async function main() {
  stack = await createHeartbeatStack(10);
  await stack.startApi();
  const conn = await amqp.connect(stack.env.amqpUrl);
  stack.onCleanup(() => conn.close().catch(() => {}));
  await prefill(await publisher(conn), REPORTS_TOPIC, AGENTS, (i) =>
    report(hostName('dash', i), i, true),
  );
  const base = `http://127.0.0.1:${stack.env.port}`;
  const headers = { 'x-auth-token': stack.env.adminToken };
  for (let tries = 0; ; tries++) {
    const r = (await (await fetch(`${base}/dashboard/api/agents`, { headers })).json()) as {
      agents: unknown[];
    };
    if (r.agents.length === AGENTS) break;
    if (tries > 200) throw new Error(`only ${r.agents.length} of ${AGENTS} agents registered`);
    await new Promise((res) => setTimeout(res, 100));
  }
  const html = staticTable(AGENTS);
  const server = createServer((_, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end(html),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  stack.onCleanup(() => new Promise<void>((r) => server.close(() => r())));
  const staticUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  browser = await launchChromium();
  const session = {
    token: stack.env.adminToken,
    expires_at: new Date(Date.now() + 3600_000).toISOString(),
    user: 'admin',
    project: { id: 'bench', name: 'bench' },
    roles: ['admin'],
  };
  const dash: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    dash.push(await timeLoad(`${base}/dashboard#agents`, session, true));
    plain.push(await timeLoad(staticUrl, session, false));
  }
  const d = stats(dash);
  const p = stats(plain);
  console.log(`dashboard Agents page, ${AGENTS} agents, ${RUNS} cold loads in headless Chromium:`);
  console.log(
    `  dashboard interactive: median ${d.median.toFixed(0)} ms, worst ${d.worst.toFixed(0)} ms`,
  );
  console.log(
    `  static table drawn:    median ${p.median.toFixed(0)} ms, worst ${p.worst.toFixed(0)} ms`,
  );
  console.log(`target (interactive < 1000 ms, median): ${d.median < 1000 ? 'met' : 'MISSED'}`);
  console.log(`ratio static/dashboard: ${(p.median / d.median).toFixed(2)}`);
}

await runBench({
  main,
  cleanup: async () => {
    await browser?.close();
    await stack?.cleanup();
  },
  lastly: () => stack?.kill(),
  onFailure: () => {
    if (stack) console.error(`kumo-api log (last lines):\n${logTail(stack.env.logPath, 20)}`);
  },
});
