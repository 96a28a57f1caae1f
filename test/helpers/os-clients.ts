/**
 * OpenStack's own clients against a test cluster's kumo-api: Debian's `openstack` CLI
 * (6.0, through Cluster.openstack: token auth on the single legacy endpoint, as
 * single-endpoint clients are configured), `glance` (python3-glanceclient 4.1, on the
 * /image root) and openstacksdk (0.101, test/fullstack/openstack_sdk.py, on the
 * /compute, /image and /networking roots).
 *
 * Invariant: every call is the client as a process, its exit code checked, its JSON output
 * parsed; a failed call fails with the client's stderr.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, type Cluster, type RunResult, runCommand } from './cluster.ts';
import { REPO } from './env.ts';

const SDK = join(REPO, 'test', 'fullstack', 'openstack_sdk.py');

export const ok = (r: RunResult, what: string): string => {
  assert.equal(r.code, 0, `${what}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
};

/** `openstack <args> -f json`, parsed. */
export async function osJson<T>(c: Cluster, args: string[]): Promise<T> {
  return JSON.parse(ok(await c.openstack([...args, '-f', 'json']), args.join(' '))) as T;
}

/** `openstack <args>`, its output. */
export async function os(c: Cluster, args: string[]): Promise<string> {
  return ok(await c.openstack(args), args.join(' '));
}

/** One openstacksdk proxy call (openstack_sdk.py's operations), its JSON result. */
export async function sdk<T>(c: Cluster, op: string, args: Record<string, unknown>): Promise<T> {
  const r = await runCommand([
    '/usr/bin/python3',
    SDK,
    c.url,
    ADMIN_TOKEN,
    op,
    JSON.stringify(args),
  ]);
  return JSON.parse(ok(r, `sdk ${op}`) || 'null') as T;
}

/** A Keystone user as openrc describes one. */
export interface Credentials {
  user: string;
  password: string;
  project: string;
}

/** The openrc environment of `who` against an identity listener (a cluster's, say). */
export const openrcOf = (c: { authUrl: string }, who: Credentials): Record<string, string> => ({
  OS_AUTH_URL: c.authUrl,
  OS_AUTH_TYPE: 'password',
  OS_USERNAME: who.user,
  OS_PASSWORD: who.password,
  OS_PROJECT_NAME: who.project,
  OS_USER_DOMAIN_ID: 'default',
  OS_PROJECT_DOMAIN_ID: 'default',
  OS_IDENTITY_API_VERSION: '3',
  OS_REGION_NAME: 'RegionOne',
  OS_INTERFACE: 'public',
});

/** `openstack <args>` as `who` (password auth, endpoints from the catalog): the raw result. */
export function openstackAs(
  c: { authUrl: string },
  who: Credentials,
  args: string[],
): Promise<RunResult> {
  return runCommand(['openstack', ...args], openrcOf(c, who));
}

/** `openstack <args> -f json` as `who`, parsed; fails with stderr when the client failed. */
export async function osJsonAs<T>(c: Cluster, who: Credentials, args: string[]): Promise<T> {
  const r = await openstackAs(c, who, [...args, '-f', 'json']);
  return JSON.parse(ok(r, `${who.user}: openstack ${args.join(' ')}`)) as T;
}

/**
 * The `openstack` CLI as seeded users (test/helpers/identity.ts seedUser: user, project and
 * password `<name>-pw` all named alike): the raw result, parsed JSON (failing with stderr),
 * or the stderr of a command that must fail.
 */
export function seededCli(c: { authUrl: string }) {
  const who = (name: string): Credentials => ({
    user: name,
    password: `${name}-pw`,
    project: name,
  });
  const run = (name: string, ...args: string[]) => openstackAs(c, who(name), args);
  return {
    run,
    async json<T = Record<string, unknown>>(name: string, ...args: string[]): Promise<T> {
      const r = await run(name, ...args, '-f', 'json');
      return JSON.parse(ok(r, `${name}: ${args.join(' ')}`)) as T;
    },
    async refused(name: string, ...args: string[]): Promise<string> {
      const r = await run(name, ...args);
      assert.notEqual(r.code, 0, `${name}: ${args.join(' ')} succeeded: ${r.stdout}`);
      return r.stderr;
    },
  };
}

/** `glance` (API v2) on the /image root. */
export async function glance(c: Cluster, args: string[]): Promise<string> {
  const auth = ['--os-image-url', `${c.url}/image`, '--os-auth-token', ADMIN_TOKEN];
  // glanceclient caches the image schema under ~/.glanceclient and, from then on, fails on
  // the schema's `stores` property ("conflicting option string: --stores"): a fresh HOME
  // per call keeps every call the first.
  const home = mkdtempSync(join(tmpdir(), 'kumo-glance-home-'));
  const r = await runCommand(['glance', '--os-image-api-version', '2', ...auth, ...args], {
    HOME: home,
  }).finally(() => rmSync(home, { recursive: true, force: true }));
  return ok(r, `glance ${args.join(' ')}`);
}
