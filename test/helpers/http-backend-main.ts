/**
 * An HTTP backend stand-in for the LBaaS lab, run inside a namespace
 * (`ip netns exec NS node this PORT NAME`): every request gets `NAME\n` (200), so a test
 * sees which member served it; `/hold?ms=N` answers after N ms (at most 60 s), so a test
 * can keep a connection open on one member (LEAST_CONNECTIONS). Prints `listening` once up.
 *
 * Invariant: it listens only on the port it is given, in the namespace it was started in
 * (the lab's), and answers nothing but its own name.
 */
import { createServer } from 'node:http';

const [portArg, name] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || !name) {
  process.stderr.write('usage: http-backend-main PORT NAME\n');
  process.exit(2);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://backend');
  const hold =
    url.pathname === '/hold' ? Math.min(Number(url.searchParams.get('ms')) || 0, 60_000) : 0;
  const answer = () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': name.length + 1 });
    res.end(`${name}\n`);
  };
  if (hold > 0) setTimeout(answer, hold);
  else answer();
});
server.keepAliveTimeout = 1000;
server.listen(port, '0.0.0.0', () => process.stdout.write('listening\n'));
