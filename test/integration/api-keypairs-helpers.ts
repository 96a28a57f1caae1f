/**
 * Helpers of the api-keypairs suites: real keys and certificates made by ssh-keygen and
 * openssl (the tools' own fingerprints to compare Kumo's with), and Nova calls at a chosen
 * microversion on a servers harness, with snapshots of the rows a refusal must not change.
 *
 * Invariant: every key comes from the real tool into a directory the suite removes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN, type Body, type Harness } from './api-servers-harness.ts';

const run = (argv: string[]) =>
  execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });

/** A new OpenSSH key of `type` (rsa, ed25519, ecdsa, dsa) in `dir`: its .pub text and the
 * MD5 fingerprint ssh-keygen prints (`MD5:aa:bb:…` → `aa:bb:…`). */
export function sshKey(dir: string, name: string, type: string, bits?: number) {
  const file = join(dir, name);
  run([
    'ssh-keygen',
    '-q',
    '-t',
    type,
    ...(bits ? ['-b', String(bits)] : []),
    '-N',
    '',
    '-C',
    `${name}@test`,
    '-f',
    file,
  ]);
  const pub = readFileSync(`${file}.pub`, 'utf8');
  const md5 = run(['ssh-keygen', '-l', '-E', 'md5', '-f', `${file}.pub`]).split(' ')[1] ?? '';
  return { pub, file, fingerprint: md5.replace(/^MD5:/, '') };
}

/** A self-signed certificate (PEM) and openssl's SHA-1 fingerprint of it, lower-case. */
export function x509Cert(dir: string, name: string) {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  run([
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    crt,
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
  ]);
  const fp = run(['openssl', 'x509', '-in', crt, '-noout', '-fingerprint', '-sha1']);
  return {
    pem: readFileSync(crt, 'utf8'),
    fingerprint: (fp.split('=')[1] ?? '').trim().toLowerCase(),
  };
}

export interface Answer {
  status: number;
  body: Body | null;
  raw: string;
}

/** A Nova call at microversion `v` (none: 2.1 by default). */
export function novaCall(h: Harness) {
  return async (
    method: string,
    url: string,
    o: { body?: unknown; token?: string; v?: string } = {},
  ): Promise<Answer> => {
    const headers: Record<string, string> = { 'x-auth-token': o.token ?? ADMIN };
    if (o.v) headers['openstack-api-version'] = `compute ${o.v}`;
    const res = await h.app.inject({
      method: method as 'GET',
      url,
      headers,
      ...(o.body === undefined ? {} : { payload: o.body as Body }),
    });
    const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
    return {
      status: res.statusCode,
      raw: res.body,
      body: json && res.body ? (res.json() as Body) : null,
    };
  };
}

/** Rows as plain objects, for deepEqual before and after a refusal. */
export const rowsOf = async (h: Harness, sql: string) =>
  (await h.db.query(sql)).map((r) => ({ ...r }));
export const keypairRows = (h: Harness) => rowsOf(h, 'SELECT * FROM keypairs ORDER BY seq');

/** The `{code, message}` of a Nova error answer with `status`. */
export function novaError(a: Answer, status: number): string {
  if (a.status !== status) throw new Error(`expected ${status}, got ${a.status}: ${a.raw}`);
  const inner = Object.values(a.body ?? {})[0] as { code: number; message: string } | undefined;
  if (inner?.code !== status) throw new Error(`not a Nova error body: ${a.raw}`);
  return inner.message;
}
