/**
 * A metadata load client for bench/metadata.ts, run inside a namespace (`ip netns exec NS
 * node this URL CONCURRENCY SECONDS EXPECT [HEADER=VALUE ...]`): CONCURRENCY loops, each
 * with its own keep-alive connection, GET URL back to back for SECONDS; every answer must
 * be 200 with body EXPECT. It prints one JSON line: `{ok, failed, seconds, firstFailure}`.
 *
 * Invariant: it only connects to the URL it is given (the lab's metadata address or
 * kumo-api's listener on loopback).
 */
import { Agent, request } from 'node:http';

const [url, concurrencyArg, secondsArg, expect, ...headerArgs] = process.argv.slice(2);
if (!url || !concurrencyArg || !secondsArg || expect === undefined) {
  process.stderr.write('usage: metadata-load-main URL CONCURRENCY SECONDS EXPECT [H=V ...]\n');
  process.exit(2);
}
const headers = Object.fromEntries(
  headerArgs.map((h) => [h.slice(0, h.indexOf('=')), h.slice(h.indexOf('=') + 1)]),
);
const concurrency = Number(concurrencyArg);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
let ok = 0;
let failed = 0;
let firstFailure: string | undefined;

function get(): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url as string, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (res.statusCode === 200 && body === expect) ok++;
        else {
          failed++;
          firstFailure ??= `${res.statusCode} ${body.slice(0, 200)}`;
        }
        resolve();
      });
    });
    req.on('error', (e) => {
      failed++;
      firstFailure ??= e.message;
      resolve();
    });
    req.end();
  });
}

const start = performance.now();
const end = start + Number(secondsArg) * 1000;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) await get();
  }),
);
const seconds = (performance.now() - start) / 1000;
agent.destroy();
process.stdout.write(`${JSON.stringify({ ok, failed, seconds, firstFailure })}\n`);
