/**
 * What the LBaaS v1 routes share: Neutron's admin-or-owner policy on a loaded object, the
 * list route (filters, fields, sorting and pages as every Neutron collection), the subnet
 * visibility check, and telling the scheduler after a change.
 *
 * Invariants: an object of another project is answered exactly as a missing one (its
 * resource's NotFound, left out of lists) unless the caller is an admin; the scheduler is
 * told only after the change committed, and never makes a request fail.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
import { getView, type Table, type View } from '../db/lbaas.ts';
import type { ColumnFilter } from '../db/neutron.ts';
import { subnetNotFound, visibleSubnets } from '../db/subnets.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId, listScope, owns } from '../policy.ts';
import { type FilterSpec, page, parseListQuery, pick, type Query, values } from '../query.ts';
import { poolChanged } from '../scheduler/lbaas.ts';
import { isAdmin } from './neutron-policy.ts';

export type ById = FastifyRequest<{ Params: { id: string }; Querystring: Query }>;
export type Loader = (req: FastifyRequest, id: string) => Promise<View>;

/** Loads one object of `table` the caller may see, else `notFound(id)`. */
export function loader(deps: AppDeps, table: Table, notFound: (id: string) => ApiError): Loader {
  return async (req, id) => {
    const view = UUID.test(id) ? await getView(deps.db, table, id) : undefined;
    if (!view || !owns(req, String(view.tenant_id))) throw notFound(id);
    return view;
  };
}

export interface Collection {
  /** URL segment and body key of the list: `pools` → /v2.0/lb/pools, {"pools": […]}. */
  collection: string;
  /** Body key of one object: `pool`. */
  member: string;
  filters: FilterSpec;
  list: (db: AppDeps['db'], filter: ColumnFilter) => Promise<View[]>;
  extra?: Record<string, (values: string[]) => ColumnFilter['clauses']>;
  /** Rewrites filter values before parsing (canonical addresses). */
  canonical?: (q: Query) => Query;
}

/** GET /v2.0/lb/<collection> and GET /v2.0/lb/<collection>/{id}. */
export function readRoutes(app: FastifyInstance, deps: AppDeps, c: Collection, load: Loader) {
  app.get(`/v2.0/lb/${c.collection}`, async (req: FastifyRequest<{ Querystring: Query }>) => {
    const query = c.canonical ? c.canonical(req.query) : req.query;
    const q = parseListQuery(query, c.member, c.filters, c.extra);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push({ sql: 'project_id = ?', params: [scope] });
    const body = page(req, c.collection, await c.list(deps.db, q.filter), q);
    const links = body[`${c.collection}_links`] as { href: string }[] | undefined;
    for (const l of links ?? []) l.href = l.href.replace('/v2.0/', '/v2.0/lb/');
    return body;
  });
  app.get(`/v2.0/lb/${c.collection}/:id`, async (req: ById) => ({
    [c.member]: pick(await load(req, req.params.id), values(req.query.fields)),
  }));
}

/** The subnet must exist and be one the caller sees (Neutron's get_subnet), else SubnetNotFound. */
export async function visibleSubnet(deps: AppDeps, req: FastifyRequest, id: string) {
  const clause = isAdmin(req) ? [] : [visibleSubnets(callerProjectId(req))];
  const extra = clause.map((c) => ` AND ${c.sql}`).join('');
  const [row] = await deps.db.query(`SELECT id FROM subnets WHERE id = ?${extra}`, [
    id,
    ...clause.flatMap((c) => c.params),
  ]);
  if (!row) throw subnetNotFound(id);
}

/** Tells the scheduler that each of `pools` changed (after commit; never throws). */
export function tell(deps: AppDeps, ...pools: string[]) {
  for (const id of new Set(pools)) void poolChanged(deps, id);
}
