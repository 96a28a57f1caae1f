/**
 * The contract tests' recorder: each call a contract test makes to kumo-api is recorded
 * (family, check name, method, url, microversion asked, status, headers, body), and
 * `assertContract` hands every record of a file to check.py in one python process
 * (Debian's /usr/bin/python3 with python3-tempest, python3-glanceclient and
 * python3-jsonschema), failing with the checker's messages.
 *
 * Invariant: a record is the answer as the client received it — headers and body are
 * not rewritten — and a record whose check the checker does not know is a failure.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { REPO } from '../helpers/env.ts';

export type Family = 'compute' | 'image' | 'networking' | 'volume';

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export interface CallRecord extends Answer {
  family: Family;
  check: string;
  method: string;
  url: string;
  microversion: string | null;
}

/** Sends one request; `headers` are the caller's own (token, content type, version). */
export type Send = (
  method: string,
  url: string,
  body: unknown,
  headers: Record<string, string>,
) => Promise<Answer>;

export interface CallOptions {
  body?: unknown;
  microversion?: string;
  headers?: Record<string, string>;
  /** The token to send; null sends none. The recorder's own by default. */
  token?: string | null;
}

const CHECKER = join(REPO, 'test', 'contract', 'check.py');

/** A Send through fastify's inject: bytes and text as octet-stream, anything else as JSON. */
export function injectSend(app: () => FastifyInstance): Send {
  return async (method, url, body, headers) => {
    const raw = Buffer.isBuffer(body) || typeof body === 'string';
    const withBody = body !== undefined;
    const type = raw ? 'application/octet-stream' : 'application/json';
    const res = await app().inject({
      method: method as 'GET',
      url,
      headers: withBody ? { 'content-type': type, ...headers } : headers,
      payload: withBody ? (raw ? body : JSON.stringify(body)) : undefined,
    });
    return answerOf(res.statusCode, res.headers, res.body);
  };
}

/** Parses a raw answer the way clients do: JSON when it says so, else the text. */
export function answerOf(
  status: number,
  headers: Record<string, string | string[] | number | undefined>,
  text: string,
): Answer {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined) flat[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  const json = (flat['content-type'] ?? '').includes('json') && text !== '';
  return { status, headers: flat, body: json ? JSON.parse(text) : text || null };
}

export class Recorder {
  readonly records: CallRecord[] = [];
  private readonly send: Send;
  private readonly token: string;
  constructor(send: Send, token: string) {
    this.send = send;
    this.token = token;
  }

  /** Makes the call, records it under `check`, and returns the answer. */
  async call(family: Family, check: string, method: string, url: string, o: CallOptions = {}) {
    const headers = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? this.token : o.token;
    if (token !== null) headers['x-auth-token'] = token;
    if (o.microversion)
      headers['openstack-api-version'] =
        `${family === 'volume' ? 'volume' : 'compute'} ${o.microversion}`;
    const answer = await this.send(method, url, o.body, headers);
    this.records.push({
      family,
      check,
      method,
      url,
      microversion: o.microversion ?? null,
      ...answer,
    });
    return answer;
  }
}

/** Runs check.py over `records`: the list of problems it found. */
export function checkRecords(records: CallRecord[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      [CHECKER],
      { maxBuffer: 64 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`check.py failed: ${stderr || err.message}`));
        else resolve(JSON.parse(stdout) as string[]);
      },
    );
    child.stdin?.end(JSON.stringify(records));
  });
}

/** Fails with every problem check.py finds in `records`. */
export async function assertContract(records: CallRecord[]) {
  assert.ok(records.length > 0, 'no calls were recorded');
  const problems = await checkRecords(records);
  if (problems.length > 0)
    assert.fail(`${problems.length} contract problems:\n${problems.join('\n')}`);
}
