/**
 * The kumo CLI in-process with a fake fetch: `run` calls cli/main.ts with the given
 * answers (204 when none) and records every request, for the CLI's unit tests.
 *
 * Invariant: nothing here reads the host's /etc/kumo/kumo.conf or the caller's env, and no
 * request leaves the process.
 */
import type { CliIo } from '../../cli/format.ts';
import { main } from '../../cli/main.ts';

export const AUTH = ['--os-url', 'http://kumo.test:9696', '--os-token', 't0k'];

export type Call = { method: string; url: string; body: unknown };
export type Reply = { status: number; body?: unknown };

export async function run(argv: string[], reply: (c: Call) => Reply = () => ({ status: 204 })) {
  const calls: Call[] = [];
  const fetchFn: typeof fetch = async (input, init) => {
    const text = typeof init?.body === 'string' ? init.body : undefined;
    const c = { method: init?.method ?? 'GET', url: String(input), body: text && JSON.parse(text) };
    calls.push(c);
    const r = reply(c);
    return new Response(r.status === 204 ? null : JSON.stringify(r.body ?? null), {
      status: r.status,
    });
  };
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: { KUMO_CONFIG: '/nonexistent/kumo.conf' },
    fetch: fetchFn,
  };
  const code = await main([...argv, ...AUTH], io);
  return { code, out, err, calls };
}
