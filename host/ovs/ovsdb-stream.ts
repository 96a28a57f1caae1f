/**
 * Turns ovsdb-server's JSON-RPC byte stream into messages. ovsdb-server writes
 * concatenated JSON objects with no delimiter (newlines are not guaranteed), so the
 * splitter tracks string/escape state and brace/bracket depth across chunks. Pure: no I/O.
 *
 * Invariant: every character pushed is scanned exactly once; a text is returned once it
 * is complete and never before; bytes between texts may only be whitespace, anything
 * else (or a text over `maxBytes`) is an `OvsdbProtocolError`, after which the splitter
 * is unusable (the connection must be dropped: there is no way to resynchronise).
 */
import { StringDecoder } from 'node:string_decoder';
import { SessionProtocolError } from '../session/errors.ts';

export class OvsdbProtocolError extends SessionProtocolError {
  override name = 'OvsdbProtocolError';
}

/** A JSON-RPC 1.0 message: a request or notification (`method`), or a reply. */
export interface RpcMessage {
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}

export interface JsonSplitter {
  /** Feed decoded text (use a UTF-8 decoder upstream so characters never split). */
  push(chunk: string): string[];
  /** Characters held for an incomplete text. */
  pending(): number;
}

const WS = new Set([' ', '\t', '\n', '\r']);

export function createJsonSplitter(maxChars = 256 * 1024 * 1024): JsonSplitter {
  let buf = '';
  let pos = 0; // next index of buf to scan
  let depth = 0;
  let inString = false;
  let escaped = false;
  let broken: OvsdbProtocolError | null = null;

  /** Scans one char inside a text; returns true when it closed the outermost value. */
  function step(c: string): boolean {
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      return false;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') return --depth === 0;
    return false;
  }

  function fail(msg: string): never {
    broken = new OvsdbProtocolError(msg);
    throw broken;
  }

  function push(chunk: string): string[] {
    if (broken) throw broken;
    buf += chunk;
    const out: string[] = [];
    let start = 0;
    for (; pos < buf.length; pos++) {
      const c = buf[pos] as string;
      if (depth === 0) {
        if (WS.has(c)) {
          start = pos + 1;
          continue;
        }
        if (c !== '{')
          fail(`expected a JSON object, got ${JSON.stringify(buf.slice(pos, pos + 40))}`);
      }
      if (step(c)) {
        out.push(buf.slice(start, pos + 1));
        start = pos + 1;
      }
    }
    buf = buf.slice(start);
    pos = buf.length;
    if (buf.length > maxChars) fail(`JSON text exceeds ${maxChars} characters`);
    return out;
  }

  return { push, pending: () => buf.length };
}

/** Bytes in, whole messages out; UTF-8 characters split across chunks are rejoined. */
export function createRpcDecoder(): (chunk: Buffer) => RpcMessage[] {
  const text = new StringDecoder('utf8');
  const splitter = createJsonSplitter();
  return (chunk) => splitter.push(text.write(chunk)).map((t) => JSON.parse(t) as RpcMessage);
}
