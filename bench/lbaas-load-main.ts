/**
 * The HTTP load client of the LBaaS benches, run inside a namespace (`ip netns exec NS node
 * this URL CONCURRENCY SECONDS MODE EXPECT [TIMEOUT_MS]`): CONCURRENCY loops GET URL back
 * to back, each answer must be 200 with a body matching the regular expression EXPECT
 * (e.g. `^m\d+$`, any member). MODE `keepalive`: each loop keeps its connection; `close`:
 * a new TCP connection per request (`Connection: close`), so every request also tests the
 * listener. SECONDS 0 runs until stdin ends (the bench closes it when its phase is over).
 * It prints one JSON line (LoadResult): counts, latency percentiles, the first failure.
 *
 * A request that fails with ECONNRESET on a reused keep-alive connection before any answer
 * is sent once more on a new connection, as HTTP clients do for idempotent requests (the
 * server may close an idle connection just as the request leaves, RFC 9112 §9.3.1); such
 * retries are counted apart, and a retry that fails is a failure. After a failure a loop
 * waits 10 ms, so a refusing server is counted at a bounded rate. A request unanswered
 * after TIMEOUT_MS (default 5000) is a failure too: without that bound, a SYN dropped by a
 * listener that is going away is retransmitted for a minute before the request ends.
 *
 * Invariant: it only connects to the URL it is given (an address in the bench's namespaces).
 */
import { Agent, type ClientRequest, request } from 'node:http';

export interface LoadResult {
  ok: number;
  failed: number;
  /** Keep-alive requests resent once after the server closed the idle connection. */
  retried: number;
  seconds: number;
  /** Latency of successful requests, ms. */
  p50: number;
  p99: number;
  max: number;
  /** The first failure's reason. */
  firstFailure?: string;
}

type Outcome = { ok: true } | { ok: false; reason: string; retry: boolean };

const [url, concurrencyArg, secondsArg, mode, expectArg, timeoutArg] = process.argv.slice(2);
if (!url || !concurrencyArg || !secondsArg || (mode !== 'keepalive' && mode !== 'close')) {
  process.stderr.write(
    'usage: lbaas-load-main URL CONCURRENCY SECONDS keepalive|close EXPECT [TIMEOUT_MS]\n',
  );
  process.exit(2);
}
const expect = new RegExp(expectArg ?? '');
const concurrency = Number(concurrencyArg);
const timeoutMs = Number(timeoutArg ?? 5000);
const keepAlive = mode === 'keepalive';
const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: concurrency }) : undefined;
const latencies: number[] = [];
let ok = 0;
let failed = 0;
let retried = 0;
let firstFailure: string | undefined;

function once(): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    // The whole exchange, connecting included (a socket timeout starts only once connected).
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const done = (o: Outcome) => {
      clearTimeout(timer);
      resolve(o);
    };
    const req: ClientRequest = request(
      url as string,
      keepAlive ? { agent } : { agent: false, headers: { connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('error', (e) => done({ ok: false, reason: e.message, retry: false }));
        res.on('end', () =>
          done(
            res.statusCode === 200 && expect.test(body)
              ? { ok: true }
              : { ok: false, reason: `${res.statusCode} ${body.slice(0, 200)}`, retry: false },
          ),
        );
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      done({
        ok: false,
        reason: `${e.code ?? ''} ${e.message}`,
        retry: req.reusedSocket && e.code === 'ECONNRESET',
      }),
    );
    req.end();
  });
}

async function get(): Promise<void> {
  const t0 = performance.now();
  let r = await once();
  if (!r.ok && r.retry) {
    retried++;
    r = await once();
  }
  if (r.ok) {
    ok++;
    latencies.push(performance.now() - t0);
    return;
  }
  failed++;
  firstFailure ??= r.reason;
  await new Promise((done) => setTimeout(done, 10));
}

const pct = (sorted: number[], p: number) =>
  sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0);

let running = true;
const seconds = Number(secondsArg);
if (seconds > 0) setTimeout(() => (running = false), seconds * 1000);
else {
  process.stdin.on('end', () => (running = false));
  process.stdin.resume();
}
const start = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (running) await get();
  }),
);
const elapsed = (performance.now() - start) / 1000;
agent?.destroy();
const sorted = latencies.sort((a, b) => a - b);
const result: LoadResult = {
  ok,
  failed,
  retried,
  seconds: elapsed,
  p50: pct(sorted, 0.5),
  p99: pct(sorted, 0.99),
  max: sorted.at(-1) ?? 0,
  firstFailure,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
