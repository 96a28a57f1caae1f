#!/usr/bin/env node
/**
 * bench/tokens: what Keystone tokens cost the service API. One authenticated read,
 * `GET /v2.0/networks/{id}`, as fast as --connections keep-alive connections can ask it,
 * with a signed project token (HMAC verification + the in-memory revocation list) and
 * with the static admin token (a constant-time compare: the floor) in the same run;
 * besides, `POST /v3/auth/tokens` per second (password login: the scrypt KDF's cost).
 *
 *   node bench/tokens.ts [--connections 16] [--seconds 3] [--rounds 3]
 *
 * Standalone: a Cluster (test/helpers/cluster.ts: own vhost, SQLite, the real kumo-api
 * process with its identity listener), a member made by the real `kumo-manage bootstrap`,
 * one network it owns. The two token kinds alternate for --rounds rounds of --seconds
 * each so drift on a busy machine hits both; each figure is the median round. Last line:
 * `ratio signed/static: R` (target ≥ 0.8).
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { ADMIN_TOKEN, Cluster } from '../test/helpers/cluster.ts';
import { loginAt, passwordAuth } from '../test/helpers/identity.ts';
import { logTail, runBench } from './lib.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
  },
});
const CONNECTIONS = Number(values.connections);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const USER = { user: 'bench', project: 'bench', password: 'bench-password-1' };

function once(
  agent: Agent,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
) {
  return new Promise<number>((resolve, reject) => {
    const req = request({ agent, host: '127.0.0.1', port, method, path, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Requests per second over `seconds`, `connections` loops; any status but `want` fails. */
async function rate(
  want: number,
  ask: (agent: Agent) => Promise<number>,
  connections: number,
): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const end = Date.now() + SECONDS * 1000;
  let done = 0;
  const loop = async () => {
    while (Date.now() < end) {
      const status = await ask(agent);
      if (status !== want) throw new Error(`answered ${status}, not ${want}`);
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  return done / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

let c: Cluster | undefined;

const loginBody = JSON.stringify(passwordAuth(USER));

async function main() {
  c = await Cluster.create('sqlite');
  await c.startApi();
  await c.bootstrap(USER.user, USER.project, 'member', USER.password);
  const { token } = await loginAt(c.authUrl, USER);
  const made = await c.http('POST', '/v2.0/networks', { network: { name: 'bench' } }, token);
  if (made.status !== 201) throw new Error(`network create answered ${made.status}`);
  const path = `/v2.0/networks/${(made.body as { network: { id: string } }).network.id}`;
  const cluster = c;
  const read = (tok: string) => (agent: Agent) =>
    once(agent, cluster.port, 'GET', path, { 'x-auth-token': tok });
  await rate(200, read(token), CONNECTIONS); // warm-up
  const signed: number[] = [];
  const fixed: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    fixed.push(await rate(200, read(ADMIN_TOKEN), CONNECTIONS));
    signed.push(await rate(200, read(token), CONNECTIONS));
  }
  const idPort = c.identityPort;
  const logins = await rate(
    201,
    (agent) =>
      once(
        agent,
        idPort,
        'POST',
        '/v3/auth/tokens?nocatalog',
        { 'content-type': 'application/json' },
        loginBody,
      ),
    4,
  );
  const s = median(signed);
  const f = median(fixed);
  console.log(
    `GET ${path.replace(/[0-9a-f-]{36}$/, '{id}')}, ${CONNECTIONS} connections, median of ${ROUNDS} rounds of ${SECONDS} s:`,
  );
  console.log(
    `  static admin token: ${f.toFixed(0)} req/s (rounds ${fixed.map((x) => x.toFixed(0)).join(', ')})`,
  );
  console.log(
    `  signed project token: ${s.toFixed(0)} req/s (rounds ${signed.map((x) => x.toFixed(0)).join(', ')})`,
  );
  console.log(
    `POST /v3/auth/tokens (password, scrypt), 4 connections: ${logins.toFixed(1)} tokens/s`,
  );
  console.log(`target signed/static >= 0.8: ${s / f >= 0.8 ? 'met' : 'NOT met'}`);
  console.log(`ratio signed/static: ${(s / f).toFixed(2)}`);
}

await runBench({
  main,
  cleanup: async () => {
    await c?.cleanup();
  },
  onFailure: () => {
    if (c?.api) console.error(logTail(c.api.logPath));
  },
});
