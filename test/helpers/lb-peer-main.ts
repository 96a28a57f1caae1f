/**
 * HTTP peers for load balancer tests, run inside a namespace (`ip netns exec NS node this …`).
 *
 * - `serve IP PORT NAME STATUS`: answers every request with STATUS and the body NAME (the
 *   member that served it) and sets the application cookie `JSESSIONID=NAME`, printing
 *   `listening` once bound;
 * - `loop URL`: sends requests one after another, each on a new connection (so every one is
 *   a fresh connect to the frontend), until a `stop` line on stdin; then prints one JSON line
 *   `{ok, failed, errors}` (errors counted by code) and exits.
 *
 * Invariant: it only listens on or connects to the addresses it is given (the test's).
 */
import { createServer, get } from 'node:http';
import { createInterface } from 'node:readline';

function serve(ip: string, port: number, name: string, status: number) {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain', 'set-cookie': `JSESSIONID=${name}` });
    res.end(name);
  });
  server.listen(port, ip, () => process.stdout.write('listening\n'));
}

function once(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? null : `HTTP${res.statusCode}`));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

async function loop(url: string) {
  let stopping = false;
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'stop') stopping = true;
  });
  const counts = { ok: 0, failed: 0, errors: {} as Record<string, number> };
  process.stdout.write('started\n');
  while (!stopping) {
    const error = await once(url);
    if (error === null) counts.ok++;
    else {
      counts.failed++;
      counts.errors[error] = (counts.errors[error] ?? 0) + 1;
    }
  }
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  process.exit(0);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') serve(args[0] ?? '', Number(args[1]), args[2] ?? '', Number(args[3]));
else if (mode === 'loop') void loop(args[0] ?? '');
else throw new Error(`usage: serve IP PORT NAME STATUS | loop URL`);
