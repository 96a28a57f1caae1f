/**
 * A TCP peer for lab tests, run inside a namespace (`ip netns exec NS node this serve|connect`).
 *
 * - `serve PORT`: answers every line a client sends with `from=<the client's address>`,
 *   so a test sees the source address a NAT left on the connection;
 * - `connect HOST PORT`: relays its stdin lines to the server and prints each answer
 *   line on stdout (`connected` first, `closed` when the connection ends), so a test can
 *   hold one connection open and probe it later.
 *
 * Invariant: it only listens on or connects to the addresses it is given (the lab's).
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

function lines(socket: Socket, onLine: (line: string) => void) {
  const rl = createInterface({ input: socket });
  rl.on('line', onLine);
  rl.on('error', () => socket.destroy());
}

function serve(port: number) {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    lines(socket, () => socket.write(`from=${socket.remoteAddress}\n`));
  });
  server.listen(port, '0.0.0.0', () => process.stdout.write('listening\n'));
}

function connect(host: string, port: number) {
  const socket = createConnection({ host, port }, () => process.stdout.write('connected\n'));
  socket.on('error', (e) => process.stdout.write(`error ${e.message}\n`));
  socket.on('close', () => {
    process.stdout.write('closed\n');
    process.exit(0);
  });
  lines(socket, (line) => process.stdout.write(`${line}\n`));
  createInterface({ input: process.stdin }).on('line', (line) => socket.write(`${line}\n`));
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'serve') serve(Number(a));
else if (mode === 'connect') connect(a as string, Number(b));
else {
  process.stderr.write('usage: tcp-peer-main serve PORT | connect HOST PORT\n');
  process.exit(2);
}
