/**
 * How the kumo CLI reaches kumo-api: endpoint and token resolution, and a small JSON
 * client over fetch that authenticates with `X-Auth-Token`.
 *
 * Invariant: every failure surfaces as an Error whose message is ONE line fit for
 * `kumo: <message>` — an ApiCallError `<status> <type>: <message>` for a non-2xx answer,
 * `cannot reach kumo-api at URL: CODE` when the connection fails, a ConfigError naming the
 * file and key, or `no token: ...` when no source gives a token.
 */
import { existsSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import type { Command } from 'commander';
import { ConfigError, DEFAULT_CONFIG_PATH, type KumoConfig, loadConfig } from '../core/config.ts';
import type { CliIo } from './format.ts';

/** A non-2xx answer from kumo-api, parsed from its NeutronError body when it has one. */
export class ApiCallError extends Error {
  readonly status: number;
  /** NeutronError.type, e.g. `AgentNotFound`; null when the body was not a NeutronError. */
  readonly type: string | null;
  readonly detail: string;
  constructor(status: number, type: string | null, message: string, detail = '') {
    super(type === null ? `${status} ${message}` : `${status} ${type}: ${message}`);
    this.name = 'ApiCallError';
    this.status = status;
    this.type = type;
    this.detail = detail;
  }
}

export interface ClientOptions {
  url: string;
  token: string;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface KumoClient {
  readonly url: string;
  get(path: string): Promise<unknown>;
  put(path: string, body?: unknown): Promise<unknown>;
  post(path: string, body?: unknown): Promise<unknown>;
  delete(path: string, body?: unknown): Promise<unknown>;
}

/** What a command group gets from main(): its streams and a lazily resolved client. */
export interface CommandContext {
  io: CliIo;
  /** Resolves endpoint and token from the command's (global) options; throws if none. */
  client(command: Command): KumoClient;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function errorCode(e: unknown): string {
  const err = e as { name?: string; code?: string; cause?: unknown; errors?: unknown[] };
  if (err?.name === 'TimeoutError') return 'timed out';
  if (typeof err?.code === 'string') return err.code;
  if (Array.isArray(err?.errors) && err.errors.length > 0) return errorCode(err.errors[0]);
  if (err?.cause !== undefined) return errorCode(err.cause);
  return oneLine(String((e as Error)?.message ?? e));
}

/** Turns a non-2xx response body into the ApiCallError it describes. */
export function apiCallError(status: number, statusText: string, text: string): ApiCallError {
  try {
    const body = JSON.parse(text) as { NeutronError?: Record<string, unknown> };
    const ne = body?.NeutronError;
    if (ne && typeof ne.type === 'string' && typeof ne.message === 'string') {
      const detail = typeof ne.detail === 'string' ? ne.detail : '';
      return new ApiCallError(status, oneLine(ne.type), oneLine(ne.message), detail);
    }
  } catch {
    // not JSON: fall through to the status text
  }
  return new ApiCallError(status, null, oneLine(statusText || STATUS_CODES[status] || 'error'));
}

async function send(
  opts: ClientOptions,
  method: string,
  path: string,
  body: unknown,
): Promise<Response> {
  const doFetch = opts.fetch ?? fetch;
  const headers: Record<string, string> = {
    'X-Auth-Token': opts.token,
    Accept: 'application/json',
  };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await doFetch(`${opts.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (e) {
    throw new Error(`cannot reach kumo-api at ${opts.url}: ${errorCode(e)}`, { cause: e });
  }
}

async function request(
  opts: ClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await send(opts, method, path, body);
  const text = await res.text();
  if (!res.ok) throw apiCallError(res.status, res.statusText, text);
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiCallError(res.status, null, `invalid JSON from kumo-api for ${method} ${path}`);
  }
}

/** A client for kumo-api at `url` (no trailing slash needed); paths start with `/v2.0/`. */
export function createClient(opts: ClientOptions): KumoClient {
  const o = { ...opts, url: opts.url.replace(/\/+$/, '') };
  return {
    url: o.url,
    get: (path) => request(o, 'GET', path),
    put: (path, body) => request(o, 'PUT', path, body),
    post: (path, body) => request(o, 'POST', path, body),
    delete: (path, body) => request(o, 'DELETE', path, body),
  };
}

/** The global options main() defines, as commander names them. */
export interface EndpointFlags {
  osUrl?: string;
  osToken?: string;
  configFile?: string;
}

export interface Endpoint {
  url: string;
  token: string;
}

function firstSet(...values: (string | undefined)[]): string | undefined {
  return values.find((v) => v !== undefined && v !== '');
}

/**
 * The config file is read only when flags and env leave the URL or token unset. An
 * explicit path (flag or KUMO_CONFIG) must be readable; a missing default path is empty.
 */
function configFor(path: string, explicit: boolean): KumoConfig | null {
  if (!explicit && !existsSync(path)) return null;
  try {
    return loadConfig(path);
  } catch (e) {
    if (e instanceof ConfigError && !e.message.includes(path)) {
      throw new ConfigError(`${path}: ${e.message}`);
    }
    throw e;
  }
}

/** The API as this host reaches it; a wildcard bind address means loopback. */
function configUrl(config: KumoConfig | null): string {
  const host = config?.api.bind_host ?? '127.0.0.1';
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${config?.api.bind_port ?? 9696}`;
}

/** Flags, then KUMO_URL/KUMO_TOKEN, then OS_URL/OS_TOKEN, then the config file [api]. */
export function resolveEndpoint(flags: EndpointFlags, env: CliIo['env']): Endpoint {
  let url = firstSet(flags.osUrl, env.KUMO_URL, env.OS_URL);
  let token = firstSet(flags.osToken, env.KUMO_TOKEN, env.OS_TOKEN);
  const explicitPath = firstSet(flags.configFile, env.KUMO_CONFIG);
  const path = explicitPath ?? DEFAULT_CONFIG_PATH;
  if (url === undefined || token === undefined) {
    const config = configFor(path, explicitPath !== undefined);
    url ??= configUrl(config);
    token ??= config?.api.admin_token;
  }
  if (token === undefined) {
    throw new Error(`no token: set --os-token, KUMO_TOKEN or [api] admin_token in ${path}`);
  }
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new Error(`invalid kumo-api URL ${JSON.stringify(url)}: must be http(s)://host:port`);
  }
  return { url: url.replace(/\/+$/, ''), token };
}
