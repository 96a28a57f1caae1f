/**
 * A stand-in for kumo-api's metadata listener, on 127.0.0.1 with an ephemeral port: it
 * answers only requests whose X-Instance-ID-Signature matches under the shared secret
 * (403 otherwise, as Nova), and records every request's method, path and headers, so
 * relay tests can check exactly what left the relay. The answer's body names the instance
 * and path: `<instance id> <path>`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { META_HEADERS, signatureMatches } from '../../contracts/metadata.ts';

export interface SeenRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  signed: boolean;
}

export interface MetadataPeer {
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

export async function startMetadataPeer(secret: string): Promise<MetadataPeer> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const id = String(req.headers[META_HEADERS.instanceId] ?? '');
    const sig = String(req.headers[META_HEADERS.signature] ?? '');
    const signed = id !== '' && signatureMatches(secret, id, sig);
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, signed });
    if (!signed) res.writeHead(403, { 'content-type': 'text/plain' }).end('Forbidden\n');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(`${id} ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
