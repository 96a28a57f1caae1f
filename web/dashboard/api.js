/**
 * The dashboard's one door to kumo-api: the session (a Keystone token kept in this tab's
 * sessionStorage), JSON calls with that token, and the live feed read as server-sent
 * events over fetch (EventSource cannot send the X-Auth-Token header).
 *
 * Invariant: every call goes to kumo-api's own origin with the viewer's token, so the page
 * can do nothing the viewer's token could not do with the CLI; a 401 ends the session.
 */
const KEY = 'kumo.session';

export function loadSession() {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  const s = JSON.parse(raw);
  return Date.parse(s.expires_at) > Date.now() ? s : null;
}

export function saveSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export async function login(form) {
  const res = await fetch('/dashboard/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(form),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 201) throw new Error(errorText(body, res.status));
  return body;
}

/** The message of any of the API's error shapes (Neutron's, Nova's, Cinder's, ours). */
function errorText(body, status) {
  if (body?.NeutronError) return body.NeutronError.message;
  const first = body && typeof body === 'object' ? Object.values(body)[0] : undefined;
  if (first && typeof first === 'object' && first.message) return first.message;
  if (body?.error?.message) return body.error.message;
  if (typeof body?.error === 'string') return body.error;
  return `HTTP ${status}`;
}

export class ApiCallError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function createClient(session, onExpired) {
  const call = async (method, path, body) => {
    const headers = { 'x-auth-token': session.token, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) onExpired();
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiCallError(res.status, errorText(parsed, res.status));
    return parsed;
  };
  return {
    session,
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    put: (path, body) => call('PUT', path, body),
    del: (path) => call('DELETE', path),
    feed: (handlers) => feed(session, handlers, onExpired),
  };
}

/** Reads `event:`/`data:` frames; reconnects after a second when the stream ends. */
function feed(session, handlers, onExpired) {
  const abort = new AbortController();
  const run = async () => {
    const res = await fetch('/dashboard/api/events', {
      headers: { 'x-auth-token': session.token, accept: 'text/event-stream' },
      signal: abort.signal,
    });
    if (res.status === 401) return onExpired();
    if (!res.ok || !res.body) throw new Error(`feed: HTTP ${res.status}`);
    handlers.status?.('live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        dispatch(buffer.slice(0, end), handlers);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
  };
  const loop = async () => {
    while (!abort.signal.aborted) {
      await run().catch(() => {});
      if (abort.signal.aborted) return;
      handlers.status?.('reconnecting');
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void loop();
  return () => abort.abort();
}

function dispatch(block, handlers) {
  let event = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (data) handlers[event]?.(JSON.parse(data));
}
