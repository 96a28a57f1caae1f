/**
 * Answers to requests Node's HTTP parser refused before fastify saw them (a header
 * section too large, Content-Length with Transfer-Encoding, bytes after a body that are
 * no request): fastify's `clientErrorHandler`.
 *
 * Invariants: such a request still gets a catalogue error in its family's shape, a fresh
 * request id (header, body and one log line), and `Connection: close`; the socket is read
 * until the client closes it or LINGER_MS passes, so the answer is not lost to a reset
 * and a client that keeps sending cannot hold the socket.
 */
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ApiError } from '../contracts/errors.ts';
import type { Logger } from '../core/log.ts';
import { errorBody } from './http.ts';
import { newRequestId, requestIdLines } from './request-id.ts';
import { type Family, familyOf } from './roots.ts';

/** Node's `clientError` (fastify's type has `rawPacket` as JSON; Node passes a Buffer). */
type ClientError = Error & { code?: string; reason?: string; rawPacket?: unknown };

function clientApiError(err: ClientError): ApiError {
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return new ApiError(
      'RequestHeaderFieldsTooLarge',
      `The request line and headers exceed ${maxHeaderSize} bytes.`,
    );
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new ApiError('RequestTimeout', 'The request was not received in time.');
  return new ApiError('BadRequest', `Malformed HTTP request: ${err.reason ?? err.message}.`);
}

/** The family of the request line in what Node's parser was reading, if it shows one. */
function rawFamily(raw: unknown): Family {
  const line = Buffer.isBuffer(raw) ? raw.subarray(0, 256).toString('latin1') : '';
  return familyOf(/^[A-Z]+ (\/\S*)/.exec(line)?.[1] ?? '/');
}

const LINGER_MS = 2000;

/**
 * fastify's `clientErrorHandler`: a request Node's parser refused (a header section too
 * large, Content-Length with Transfer-Encoding, bytes after a body that are no request)
 * gets a catalogue error and `Connection: close`; the socket is read until the client
 * closes (or LINGER_MS), so the answer is not lost to a reset.
 */
export function clientErrorHandler(log: Logger) {
  const answered = new WeakSet<Socket>();
  return (err: ClientError, socket: Socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const e = clientApiError(err);
    const id = newRequestId();
    const family = rawFamily(err.rawPacket);
    log.info(
      { request_id: id, status: e.status, code: err.code },
      'request refused by the HTTP parser',
    );
    const body = JSON.stringify(errorBody(family, e, id));
    // Closed once the answer is flushed and the client has closed its side.
    let waiting = socket.readableEnded ? 1 : 2;
    const settle = () => {
      waiting -= 1;
      if (waiting === 0) socket.destroy();
    };
    // An absolute bound: a client that keeps sending cannot hold the socket open.
    const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(linger));
    if (!socket.readableEnded) socket.once('end', settle);
    socket.end(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${requestIdLines(family, id)}` +
        `Connection: close\r\n\r\n${body}`,
      settle,
    );
    socket.resume();
  };
}
