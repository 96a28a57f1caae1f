/**
 * Security groups as Nova sees them through Neutron: a name (or id) resolved in the
 * server's project, a server's ports' groups replaced, and the groups with their rules for
 * the os-security-groups proxy. Own small queries on the migration-14 tables.
 *
 * Invariants: a name is looked up only among the project's groups, a name match winning
 * over an id match (nova/network/neutron.py _process_security_groups); `default` is the
 * project's default group, made on first use; a server's ports change in one transaction.
 */
import { ApiError } from '../../contracts/errors.ts';
import { queryIn } from './chunks.ts';
import { DEFAULT_GROUP_NAME, ensureDefaultSecurityGroup } from './default-sg.ts';
import type { Db, Queryable } from './index.ts';
import { bool } from './neutron.ts';

/** The project's group named (or with the id) `ref`; undefined when there is none. */
export async function findProjectGroup(
  tx: Queryable,
  projectId: string,
  ref: string,
  now: Date,
): Promise<{ id: string; name: string } | undefined> {
  const rows = await tx.query<{ id: string; name: string }>(
    'SELECT id, name FROM securitygroups WHERE project_id = ? AND (name = ? OR id = ?)',
    [projectId, ref, ref],
  );
  const byName = rows.filter((r) => r.name === ref);
  if (byName.length === 0 && ref === DEFAULT_GROUP_NAME)
    return { id: await ensureDefaultSecurityGroup(tx, projectId, now), name: ref };
  if (byName.length > 1)
    throw new ApiError(
      'Conflict',
      `Multiple security groups found matching '${ref}'. Use an ID to be more specific.`,
    );
  const found = byName[0] ?? rows.find((r) => r.id === ref);
  return found && { id: found.id, name: found.name };
}

/**
 * The groups of `refs` in the project, each once (Nova's 400 "not found for project" for
 * one that is not there).
 */
export async function resolveServerGroups(
  db: Db,
  projectId: string,
  refs: readonly string[],
  now: Date,
): Promise<{ id: string; name: string }[]> {
  return db.transaction(async (tx) => {
    const out: { id: string; name: string }[] = [];
    for (const ref of refs) {
      const g = await findProjectGroup(tx, projectId, ref, now);
      if (g === undefined)
        throw new ApiError(
          'BadRequest',
          `Security group ${ref} not found for project ${projectId}.`,
        );
      if (!out.some((o) => o.id === g.id)) out.push(g);
    }
    return out;
  });
}

/** The server's ports with their groups and port security, in creation order. */
export async function serverPorts(db: Queryable, instanceId: string) {
  const rows = await db.query<{ id: string; port_security_enabled: unknown }>(
    'SELECT id, port_security_enabled FROM ports WHERE device_id = ? ORDER BY created_at, id',
    [instanceId],
  );
  const groups = await queryIn<{ port_id: string; security_group_id: string }>(
    db,
    rows.map((r) => r.id),
    (list) =>
      `SELECT port_id, security_group_id FROM securitygroupportbindings WHERE port_id IN ${list}`,
  );
  return rows.map((r) => ({
    id: r.id,
    portSecurity: bool(r.port_security_enabled),
    groups: groups.filter((g) => g.port_id === r.id).map((g) => g.security_group_id),
  }));
}

/** Adds group `groupId` to, or removes it from, every port of `portIds`; one transaction. */
export async function changePortsGroup(
  db: Db,
  portIds: readonly string[],
  groupId: string,
  add: boolean,
): Promise<void> {
  await db.transaction(async (tx) => {
    for (const portId of portIds) {
      await tx.query(
        'DELETE FROM securitygroupportbindings WHERE port_id = ? AND security_group_id = ?',
        [portId, groupId],
      );
      if (add)
        await tx.query(
          'INSERT INTO securitygroupportbindings (port_id, security_group_id) VALUES (?, ?)',
          [portId, groupId],
        );
      await tx.query('UPDATE ports SET revision_number = revision_number + 1 WHERE id = ?', [
        portId,
      ]);
    }
  });
}

export interface GroupRow {
  id: string;
  project_id: string;
  name: string;
  description: string;
}

export interface RuleRow {
  id: string;
  security_group_id: string;
  direction: string;
  protocol: string | null;
  port_range_min: unknown;
  port_range_max: unknown;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
}

/** The groups of `ids` (creation order) with their rules, and the groups those rules name. */
export async function groupsWithRules(db: Queryable, ids: readonly string[]) {
  const groups = await queryIn<GroupRow & Record<string, unknown>>(
    db,
    ids,
    (list) => `SELECT id, project_id, name, description FROM securitygroups
        WHERE id IN ${list} ORDER BY created_at, id`,
  );
  const rules = await queryIn<RuleRow & Record<string, unknown>>(
    db,
    ids,
    (list) => `SELECT id, security_group_id, direction, protocol, port_range_min, port_range_max,
        remote_ip_prefix, remote_group_id FROM securitygrouprules
        WHERE security_group_id IN ${list} ORDER BY created_at, id`,
  );
  const remoteIds = [...new Set(rules.flatMap((r) => r.remote_group_id ?? []))];
  const remotes = await queryIn<GroupRow & Record<string, unknown>>(
    db,
    remoteIds,
    (list) => `SELECT id, project_id, name, description FROM securitygroups WHERE id IN ${list}`,
  );
  return { groups, rules, remotes: new Map(remotes.map((g) => [g.id, g])) };
}

/** The ids of the project's groups (its default made first, as Neutron's listing does). */
export async function projectGroupIds(db: Db, projectId: string, now: Date) {
  await db.transaction((tx) => ensureDefaultSecurityGroup(tx, projectId, now));
  const rows = await db.query<{ id: string }>(
    'SELECT id FROM securitygroups WHERE project_id = ?',
    [projectId],
  );
  return rows.map((r) => r.id);
}
