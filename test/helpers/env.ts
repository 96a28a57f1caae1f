/**
 * Real services for tests: a fresh RabbitMQ vhost, a fresh PostgreSQL database, temp dirs.
 *
 * Invariant: every test run gets its own vhost and database (so suites never see each
 * other's queues or rows) and cleans them up; a missing service fails the test with the
 * reason and the command that would fix it, it never skips silently.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseUrl } from '../../core/config.ts';

export const RABBIT_USER = process.env.KUMO_TEST_RABBIT_USER ?? 'kumo_test';
export const RABBIT_PASSWORD = process.env.KUMO_TEST_RABBIT_PASSWORD ?? 'kumo_test_pw';
export const PG_USER = process.env.KUMO_TEST_PG_USER ?? 'kumo_test';
export const PG_PASSWORD = process.env.KUMO_TEST_PG_PASSWORD ?? 'kumo_test_pw';
export const REPO = join(import.meta.dirname, '..', '..');

const suffix = () => randomBytes(4).toString('hex');

/** A service CLI that has not answered in this long is killed: a wedged broker fails a test, it never hangs it. */
const RUN_TIMEOUT_MS = 60_000;

function run(argv: string[], what: string): string {
  try {
    return execFileSync(argv[0] as string, argv.slice(1), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: RUN_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `${what} failed (${argv.join(' ')}): ${err.stderr?.trim() || err.message}. Run ./run_tests.sh, which installs and starts the services.`,
    );
  }
}

export interface Vhost {
  name: string;
  url: string;
  /** The same vhost as a kumo.conf transport_url. */
  transportUrl: string;
  cleanup(): void;
}

export function rabbitVhost(): Vhost {
  const name = `kumo-test-${suffix()}`;
  run(['rabbitmqctl', '-q', 'add_vhost', name], 'creating a RabbitMQ vhost');
  run(
    ['rabbitmqctl', '-q', 'set_permissions', '-p', name, RABBIT_USER, '.*', '.*', '.*'],
    'granting the vhost',
  );
  const auth = `${RABBIT_USER}:${RABBIT_PASSWORD}`;
  return {
    name,
    url: `amqp://${auth}@127.0.0.1:5672/${name}`,
    transportUrl: `rabbit://${auth}@127.0.0.1:5672/${name}`,
    cleanup: () => {
      try {
        run(['rabbitmqctl', '-q', 'delete_vhost', name], 'deleting the vhost');
      } catch {
        /* the broker may be down in a test that stopped it; the vhost is unique anyway */
      }
    },
  };
}

export interface TestDatabase {
  url: DatabaseUrl;
  /** The same database as a kumo.conf [database] connection. */
  connection: string;
  cleanup(): void;
}

function psql(sql: string) {
  run(
    [
      'psql',
      '-v',
      'ON_ERROR_STOP=1',
      '-Atq',
      '-h',
      '127.0.0.1',
      '-U',
      PG_USER,
      '-d',
      'postgres',
      '-c',
      sql,
    ],
    'psql',
  );
}

export function testDatabase(engine: 'sqlite' | 'postgres', dir: string): TestDatabase {
  if (engine === 'sqlite') {
    const path = join(dir, `kumo-${suffix()}.sqlite`);
    return { url: { engine, path }, connection: `sqlite:///${path}`, cleanup: () => {} };
  }
  process.env.PGPASSWORD = PG_PASSWORD;
  const name = `kumo_test_${suffix()}`;
  psql(`CREATE DATABASE ${name}`);
  const url = `postgresql://${PG_USER}:${PG_PASSWORD}@127.0.0.1:5432/${name}`;
  return {
    url: { engine, url },
    connection: url,
    cleanup: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

export function tempDir(prefix = 'kumo-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes; the error says what. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs = 15_000,
  stepMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
