/**
 * kumo-manage, as keystone-manage: `bootstrap` makes the first admin (a project, a user
 * with a password and a role on it, in the Default domain) and `token-keys setup|rotate`
 * keeps the token key repository.
 *
 * Invariants: bootstrap migrates first and is idempotent — it creates only what is
 * missing, changes the password only when it differs (revoking the user's tokens in the
 * same transaction, as any password change does) and says line by line what it did; the
 * database and key repository come from kumo.conf exactly as kumo-api finds them; a
 * rotation is announced to running replicas on PostgreSQL, so their key rings reload at
 * once (keys.ts KEYS_CHANNEL).
 * manageMain never exits the process: it returns 0, 1 (failure) or 2 (usage).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { DEFAULT_CONFIG_PATH, type KumoConfig, loadConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import { type Db, databaseOf, notifyOnCommit, openDb, type Queryable } from '../db/index.ts';
import { migrate } from '../db/migrations.ts';
import { newId } from './admin-common.ts';
import { DEFAULT_DOMAIN_ID } from './admin-domains.ts';
import { KEYS_CHANNEL, rotateKeys, setupKeys } from './keys.ts';
import { findProjectByName, findRoleByName, findUserByName } from './lookup.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { openRevocations } from './revocations.ts';
import { keyRepositoryOf } from './start.ts';
import { addGrant, type Grant, hasGrant, insertRow, updateRow } from './store.ts';

export interface ManageIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export interface BootstrapRequest {
  user: string;
  project: string;
  role: string;
  password: string;
}

async function ensureRow(
  tx: Queryable,
  say: (s: string) => void,
  kind: 'project' | 'role',
  name: string,
  now: string,
): Promise<string> {
  const found =
    kind === 'project'
      ? await findProjectByName(tx, DEFAULT_DOMAIN_ID, name)
      : await findRoleByName(tx, name);
  if (found) {
    say(`${kind} ${name} exists (${found.id})`);
    return found.id;
  }
  const id = newId();
  if (kind === 'project')
    await insertRow(tx, 'projects', {
      id,
      domain_id: DEFAULT_DOMAIN_ID,
      name,
      description: 'Bootstrap project',
      enabled: true,
      created_at: now,
    });
  else await insertRow(tx, 'roles', { id, name, description: '' });
  say(`created ${kind} ${name} (${id})`);
  return id;
}

/** The user, created or with its password set; true when tokens must be revoked. */
async function ensureUser(
  tx: Queryable,
  say: (s: string) => void,
  r: BootstrapRequest,
  hash: string,
  now: string,
) {
  const found = await findUserByName(tx, DEFAULT_DOMAIN_ID, r.user);
  if (!found) {
    const id = newId();
    await insertRow(tx, 'users', {
      id,
      domain_id: DEFAULT_DOMAIN_ID,
      name: r.user,
      password_hash: hash,
      enabled: true,
      default_project_id: null,
      email: null,
      description: '',
      password_changed_at: now,
      created_at: now,
    });
    say(`created user ${r.user} (${id}) with the given password`);
    return { id, revoke: false };
  }
  if (await verifyPassword(r.password, found.password_hash)) {
    say(`user ${r.user} exists (${found.id}), password unchanged`);
    return { id: found.id, revoke: false };
  }
  await updateRow(tx, 'users', found.id, { password_hash: hash, password_changed_at: now });
  say(`user ${r.user} exists (${found.id}), password set; its earlier tokens are revoked`);
  return { id: found.id, revoke: true };
}

export async function bootstrap(db: Db, r: BootstrapRequest, say: (s: string) => void) {
  await migrate(db);
  const hash = await hashPassword(r.password);
  const revocations = await openRevocations({
    db,
    now: Date.now,
    ttlMs: 7 * 86_400_000,
    log: silentLogger(),
  });
  try {
    const revoked = await db.transaction(async (tx) => {
      const now = new Date().toISOString();
      const projectId = await ensureRow(tx, say, 'project', r.project, now);
      const user = await ensureUser(tx, say, r, hash, now);
      const roleId = await ensureRow(tx, say, 'role', r.role, now);
      const grant: Grant = { userId: user.id, targetType: 'project', targetId: projectId, roleId };
      if (await hasGrant(tx, grant))
        say(`role ${r.role} already granted to ${r.user} on ${r.project}`);
      else {
        await addGrant(tx, grant);
        say(`granted role ${r.role} to user ${r.user} on project ${r.project}`);
      }
      return user.revoke ? [await revocations.record(tx, { userId: user.id })] : [];
    });
    await revocations.commit(revoked);
  } finally {
    await revocations.close();
  }
}

/** The password in `path`: its first line, which must not be empty. */
export function readPasswordFile(path: string): string {
  const password = readFileSync(path, 'utf8').split(/\r?\n/)[0] ?? '';
  if (password === '') throw new Error(`the password file ${path} is empty`);
  return password;
}

/**
 * Tells running kumo-api replicas on PostgreSQL to reload their key rings now (they would
 * within a minute anyway, so a database out of reach is only a warning). SQLite serves
 * one process, which rereads the repository on its own.
 */
async function announceRotation(c: KumoConfig, io: ManageIo) {
  const url = c.database.connection;
  if (url?.engine !== 'postgres') return;
  const db = openDb(url);
  try {
    await notifyOnCommit(db, db.engine, KEYS_CHANNEL);
  } catch (e) {
    io.stderr.write(`kumo-manage: warning: rotation not announced: ${(e as Error).message}\n`);
  } finally {
    await db.close();
  }
}

function program(io: ManageIo) {
  const p = new Command('kumo-manage')
    .description('bootstrap kumo-api identity and keep its token keys')
    .option('--config-file <path>', 'kumo.conf', DEFAULT_CONFIG_PATH)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: () => {},
      outputError: (s) => io.stderr.write(`kumo-manage: ${s.replace(/^error: /, '')}`),
    });
  const config = () => loadConfig(p.opts<{ configFile: string }>().configFile);
  const say = (s: string) => io.stdout.write(`${s}\n`);
  p.command('bootstrap')
    .description('create the first project, user and role assignment (idempotent)')
    .requiredOption('--user <name>', 'user name (Default domain)')
    .requiredOption('--project <name>', 'project name (Default domain)')
    .requiredOption('--role <name>', 'role granted to the user on the project')
    .requiredOption('--password-file <path>', 'file holding the password (first line)')
    .action(async (o: { user: string; project: string; role: string; passwordFile: string }) => {
      const c = config();
      const password = readPasswordFile(o.passwordFile);
      const db = openDb(databaseOf(c));
      try {
        await bootstrap(db, { user: o.user, project: o.project, role: o.role, password }, say);
      } finally {
        await db.close();
      }
    });
  const keys = p.command('token-keys').description('the token key repository');
  keys.command('setup').action(() => {
    const dir = keyRepositoryOf(config());
    setupKeys(dir);
    say(`token keys ready in ${dir}`);
  });
  keys.command('rotate').action(async () => {
    const c = config();
    const dir = keyRepositoryOf(c);
    say(
      `rotated token keys in ${dir}: key ${rotateKeys(dir, c.identity.max_active_keys)} is now primary`,
    );
    await announceRotation(c, io);
  });
  return p;
}

/** Runs `kumo-manage <argv...>` and returns the exit code. */
export async function manageMain(argv: string[], io: ManageIo): Promise<number> {
  try {
    await program(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    io.stderr.write(`kumo-manage: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
