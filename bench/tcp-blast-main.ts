/**
 * A TCP bulk sender/receiver for bench/secgroup-throughput, run inside a lab namespace
 * (`ip netns exec NS node bench/tcp-blast-main.ts …`), in place of iperf3:
 *
 * - `listen PORT send|recv SECONDS`: accepts one connection on 0.0.0.0:PORT (prints
 *   `listening` first), then sends or receives on it;
 * - `connect HOST PORT send|recv SECONDS`: connects, then sends or receives.
 *
 * The sender writes 256 KiB buffers as fast as the socket drains for SECONDS, then ends the
 * connection. The receiver counts bytes and prints one JSON line on stdout when the
 * sender's end arrives: `{"bytes": B, "ms": T}`, T from its first byte to its last.
 *
 * Invariant: it only listens on or connects to the address and port it is given (the
 * lab's), moves bytes of zeros, and exits when its one connection ends (or after
 * SECONDS + 30 s at the latest), so no process outlives a bench run.
 */
import { createConnection, createServer, type Socket } from 'node:net';

const CHUNK = Buffer.alloc(256 * 1024);

function send(socket: Socket, seconds: number) {
  const until = performance.now() + seconds * 1000;
  const pump = () => {
    while (performance.now() < until) if (!socket.write(CHUNK)) return;
    socket.end();
  };
  socket.on('drain', pump);
  pump();
}

function receive(socket: Socket) {
  let bytes = 0;
  let first = 0;
  let last = 0;
  socket.on('data', (chunk: Buffer) => {
    last = performance.now();
    if (bytes === 0) first = last;
    bytes += chunk.length;
  });
  socket.on('end', () => {
    process.stdout.write(`${JSON.stringify({ bytes, ms: last - first })}\n`);
    socket.end();
  });
}

function use(socket: Socket, role: string, seconds: number) {
  socket.setNoDelay(false);
  socket.on('error', (e) => {
    process.stderr.write(`tcp-blast: ${e.message}\n`);
    process.exit(1);
  });
  socket.on('close', () => process.exit(0));
  if (role === 'send') send(socket, seconds);
  else receive(socket);
}

const args = process.argv.slice(2);
const [mode] = args;
const [host, port, role, secs] = mode === 'listen' ? ['0.0.0.0', ...args.slice(1)] : args.slice(1);
const seconds = Number(secs);
if (
  (mode !== 'listen' && mode !== 'connect') ||
  !/^\d{1,5}$/.test(port ?? '') ||
  (role !== 'send' && role !== 'recv') ||
  !(seconds > 0 && seconds <= 60)
) {
  process.stderr.write(
    'usage: tcp-blast-main listen PORT send|recv SECONDS | connect HOST PORT send|recv SECONDS\n',
  );
  process.exit(2);
}
setTimeout(() => process.exit(3), (seconds + 30) * 1000).unref();
if (mode === 'listen') {
  const server = createServer((socket) => {
    server.close();
    use(socket, role, seconds);
  });
  server.listen(Number(port), host, () => process.stdout.write('listening\n'));
} else {
  const socket = createConnection({ host: host as string, port: Number(port) }, () =>
    use(socket, role, seconds),
  );
  socket.on('error', (e) => {
    process.stderr.write(`tcp-blast: ${e.message}\n`);
    process.exit(1);
  });
}
