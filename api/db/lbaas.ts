/**
 * LBaaS v1 rows as Neutron shows them (neutron-lbaas's _make_pool_dict, _make_member_dict,
 * _make_vip_dict, _make_health_monitor_dict), the filters of their lists, and their
 * not-found errors.
 *
 * Invariants: a view is built from the rows alone, so lists and shows agree; a member's
 * shown status is its stored one unless that is ACTIVE, then INACTIVE when it is admin-down
 * or its serving haproxy last found it down (with haproxy's reason), else ACTIVE; a
 * monitor shows url_path, http_method and expected_codes only for HTTP and HTTPS; filter
 * values reach SQL only as bound parameters.
 */
import { ApiError } from '../../contracts/errors.ts';
import { LB_PROVIDER } from '../../contracts/lbaas.ts';
import type { Param, Queryable, Row } from './index.ts';
import { bool, type ColumnFilter, whereSql } from './neutron.ts';

export type View = { id: string; [key: string]: unknown };
export type Table = 'lb_pools' | 'lb_members' | 'lb_vips' | 'lb_health_monitors';

export const poolNotFound = (id: string) =>
  new ApiError('PoolNotFound', `Pool ${id} could not be found`);
export const memberNotFound = (id: string) =>
  new ApiError('MemberNotFound', `Member ${id} could not be found`);
export const vipNotFound = (id: string) =>
  new ApiError('VipNotFound', `Vip ${id} could not be found`);
export const monitorNotFound = (id: string) =>
  new ApiError('HealthMonitorNotFound', `Health_monitor ${id} could not be found`);

type Spec = Record<string, { column: string; type: 'text' | 'bool' | 'int' }>;
const text = (column: string) => ({ column, type: 'text' }) as const;
const int = (column: string) => ({ column, type: 'int' }) as const;
const flag = (column: string) => ({ column, type: 'bool' }) as const;
const COMMON = {
  id: text('id'),
  tenant_id: text('project_id'),
  project_id: text('project_id'),
  admin_state_up: flag('admin_state_up'),
};
const NAMED = { ...COMMON, name: text('name'), description: text('description') };

export const POOL_FILTERS: Spec = {
  ...NAMED,
  subnet_id: text('subnet_id'),
  protocol: text('protocol'),
  lb_method: text('lb_method'),
  status: text('status'),
  status_description: text('status_description'),
};
/** status is computed (memberStatusSql), so the route filters it with a clause. */
export const MEMBER_FILTERS: Spec = {
  ...COMMON,
  pool_id: text('pool_id'),
  address: text('address'),
  protocol_port: int('protocol_port'),
  weight: int('weight'),
};
export const VIP_FILTERS: Spec = {
  ...NAMED,
  subnet_id: text('subnet_id'),
  address: text('address'),
  port_id: text('port_id'),
  protocol_port: int('protocol_port'),
  protocol: text('protocol'),
  pool_id: text('pool_id'),
  connection_limit: int('connection_limit'),
  status: text('status'),
};
export const MONITOR_FILTERS: Spec = {
  ...COMMON,
  type: text('type'),
  delay: int('delay'),
  timeout: int('timeout'),
  max_retries: int('max_retries'),
  http_method: text('http_method'),
  url_path: text('url_path'),
  expected_codes: text('expected_codes'),
};

/** A member's shown status as SQL (for the status filter), as memberStatus computes it. */
export const MEMBER_STATUS_SQL = `(CASE WHEN status <> 'ACTIVE' THEN status
  WHEN NOT admin_state_up OR health = 'INACTIVE' THEN 'INACTIVE' ELSE 'ACTIVE' END)`;

function memberStatus(r: Row): { status: unknown; status_description: unknown } {
  if (r.status !== 'ACTIVE') return { status: r.status, status_description: r.status_description };
  if (!bool(r.admin_state_up)) return { status: 'INACTIVE', status_description: null };
  if (r.health === 'INACTIVE')
    return { status: 'INACTIVE', status_description: r.health_description ?? null };
  return { status: 'ACTIVE', status_description: null };
}

const owner = (r: Row) => ({ tenant_id: r.project_id, project_id: r.project_id });

function toMember(r: Row): View {
  return {
    id: String(r.id),
    ...owner(r),
    pool_id: r.pool_id,
    address: r.address,
    protocol_port: Number(r.protocol_port),
    weight: Number(r.weight),
    admin_state_up: bool(r.admin_state_up),
    ...memberStatus(r),
  };
}

function toVip(r: Row): View {
  const type = r.persistence_type as string | null;
  const persistence =
    type === null ? null : type === 'APP_COOKIE' ? { type, cookie_name: r.cookie_name } : { type };
  return {
    id: String(r.id),
    ...owner(r),
    name: r.name,
    description: r.description,
    subnet_id: r.subnet_id,
    address: r.address,
    port_id: r.port_id,
    protocol_port: Number(r.protocol_port),
    protocol: r.protocol,
    pool_id: r.pool_id,
    session_persistence: persistence,
    connection_limit: Number(r.connection_limit),
    admin_state_up: bool(r.admin_state_up),
    status: r.status,
    status_description: r.status_description,
  };
}

const byKey = (rows: Row[], key: string) => {
  const out = new Map<unknown, Row[]>();
  for (const r of rows) out.set(r[key], [...(out.get(r[key]) ?? []), r]);
  return out;
};

function toPool(r: Row, members: Row[], assocs: Row[], vip: Row | undefined): View {
  return {
    id: String(r.id),
    ...owner(r),
    name: r.name,
    description: r.description,
    subnet_id: r.subnet_id,
    protocol: r.protocol,
    vip_id: vip?.id ?? null,
    lb_method: r.lb_method,
    admin_state_up: bool(r.admin_state_up),
    status: r.status,
    status_description: r.status_description,
    provider: LB_PROVIDER,
    members: members.map((m) => m.id),
    health_monitors: assocs.map((a) => a.monitor_id),
    health_monitors_status: assocs.map((a) => ({
      monitor_id: a.monitor_id,
      status: a.status,
      status_description: a.status_description,
    })),
  };
}

function toMonitor(r: Row, assocs: Row[]): View {
  const http = r.type === 'HTTP' || r.type === 'HTTPS';
  return {
    id: String(r.id),
    ...owner(r),
    type: r.type,
    delay: Number(r.delay),
    timeout: Number(r.timeout),
    max_retries: Number(r.max_retries),
    admin_state_up: bool(r.admin_state_up),
    ...(http
      ? { url_path: r.url_path, http_method: r.http_method, expected_codes: r.expected_codes }
      : {}),
    pools: assocs.map((a) => ({
      pool_id: a.pool_id,
      status: a.status,
      status_description: a.status_description,
    })),
  };
}

/** Rows of `table` matching `filter`, oldest first. */
async function rowsOf(db: Queryable, table: Table, filter: ColumnFilter) {
  const where = whereSql(filter);
  const rows = await db.query(
    `SELECT * FROM ${table}${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  return { rows, where };
}

export async function listPools(db: Queryable, filter: ColumnFilter): Promise<View[]> {
  const { rows, where } = await rowsOf(db, 'lb_pools', filter);
  if (rows.length === 0) return [];
  const scope = `pool_id IN (SELECT id FROM lb_pools${where.sql})`;
  const p: Param[] = where.params;
  const members = await db.query(
    `SELECT id, pool_id FROM lb_members WHERE ${scope} ORDER BY created_at, id`,
    p,
  );
  const assocs = await db.query(
    `SELECT * FROM lb_pool_monitors WHERE ${scope} ORDER BY seq, monitor_id`,
    p,
  );
  const vips = await db.query(`SELECT id, pool_id FROM lb_vips WHERE ${scope}`, p);
  const [m, a, v] = [byKey(members, 'pool_id'), byKey(assocs, 'pool_id'), byKey(vips, 'pool_id')];
  return rows.map((r) => toPool(r, m.get(r.id) ?? [], a.get(r.id) ?? [], v.get(r.id)?.[0]));
}

export async function listMembers(db: Queryable, filter: ColumnFilter): Promise<View[]> {
  return (await rowsOf(db, 'lb_members', filter)).rows.map(toMember);
}

export async function listVips(db: Queryable, filter: ColumnFilter): Promise<View[]> {
  return (await rowsOf(db, 'lb_vips', filter)).rows.map(toVip);
}

export async function listMonitors(db: Queryable, filter: ColumnFilter): Promise<View[]> {
  const { rows, where } = await rowsOf(db, 'lb_health_monitors', filter);
  if (rows.length === 0) return [];
  const assocs = await db.query(
    `SELECT * FROM lb_pool_monitors WHERE monitor_id IN (SELECT id FROM lb_health_monitors${where.sql})
      ORDER BY seq, pool_id`,
    where.params,
  );
  const a = byKey(assocs, 'monitor_id');
  return rows.map((r) => toMonitor(r, a.get(r.id) ?? []));
}

const LISTS = {
  lb_pools: listPools,
  lb_members: listMembers,
  lb_vips: listVips,
  lb_health_monitors: listMonitors,
} as const;

/** One object's view, or undefined. */
export async function getView(db: Queryable, table: Table, id: string): Promise<View | undefined> {
  const [one] = await LISTS[table](db, { columns: { id: [id] }, clauses: [] });
  return one;
}

/** One row of `table` (the raw columns), or undefined. */
export async function getRow(db: Queryable, table: Table, id: string): Promise<Row | undefined> {
  const [row] = await db.query(`SELECT * FROM ${table} WHERE id = ?`, [id]);
  return row;
}

/** GET /v2.0/lb/pools/{id}/stats: zeros until the serving agent reported. */
export async function poolStats(db: Queryable, poolId: string) {
  const [row] = await db.query('SELECT * FROM lb_pool_stats WHERE pool_id = ?', [poolId]);
  const n = (k: string) => Number(row?.[k] ?? 0);
  return {
    bytes_in: n('bytes_in'),
    bytes_out: n('bytes_out'),
    active_connections: n('active_connections'),
    total_connections: n('total_connections'),
  };
}
