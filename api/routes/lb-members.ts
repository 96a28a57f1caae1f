/**
 * Neutron LBaaS v1 members: /v2.0/lb/members (list, show, create, update, delete).
 *
 * Invariants: a body is validated whole before anything is written; a member's pool (and
 * the pool a move names) is one the caller may act on, else PoolNotFound; an address is
 * stored and filtered in canonical form, so (pool, address, port) is unique however the
 * address was spelled (MemberExists); a move tells both pools' agents.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { canonicalIp } from '../../contracts/inet.ts';
import { MemberCreate, MemberUpdate } from '../../contracts/lbaas-api.ts';
import {
  getView,
  listMembers,
  MEMBER_FILTERS,
  MEMBER_STATUS_SQL,
  memberNotFound,
  poolNotFound,
} from '../db/lbaas.ts';
import { createMember, deleteMember, updateMember } from '../db/lbaas-writes.ts';
import type { AppDeps } from '../deps.ts';
import { ownerForCreate } from '../policy.ts';
import { type Query, values } from '../query.ts';
import { type ById, loader, readRoutes, tell } from './lb-common.ts';

/** The query with its address filter in canonical form; not an address: 400. */
export function canonicalAddress(query: Query): Query {
  if (query.address === undefined) return query;
  const address = values(query.address).map((v) => {
    const ip = canonicalIp(v);
    if (ip === undefined)
      throw new ApiError(
        'BadRequest',
        `Invalid input for address. Reason: '${v.slice(0, 45)}' is not a valid IP address.`,
      );
    return ip;
  });
  return { ...query, address };
}

const statusClause = (vals: string[]) => [
  { sql: `${MEMBER_STATUS_SQL} IN (${vals.map(() => '?').join(', ')})`, params: vals },
];

export function lbMemberRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = loader(deps, 'lb_members', memberNotFound);
  const loadPool = loader(deps, 'lb_pools', poolNotFound);
  readRoutes(
    app,
    deps,
    {
      collection: 'members',
      member: 'member',
      filters: MEMBER_FILTERS,
      list: listMembers,
      extra: { status: statusClause },
      canonical: canonicalAddress,
    },
    load,
  );

  app.post('/v2.0/lb/members', async (req, reply) => {
    const body = MemberCreate.parse(req.body).member;
    const owner = ownerForCreate(req, body);
    await loadPool(req, body.pool_id);
    const id = await createMember(deps.db, { ...body, project_id: owner }, deps.clock.now());
    deps.log.info({ memberId: id, poolId: body.pool_id }, 'member created');
    tell(deps, body.pool_id);
    return reply.status(201).send({ member: await getView(deps.db, 'lb_members', id) });
  });

  app.put('/v2.0/lb/members/:id', async (req: ById) => {
    const member = await load(req, req.params.id);
    const changes = MemberUpdate.parse(req.body).member;
    if (changes.pool_id !== undefined) await loadPool(req, changes.pool_id);
    const id = String(member.id);
    const pools = await updateMember(deps.db, id, changes, deps.clock.now());
    deps.log.info({ memberId: id, pools }, 'member updated');
    tell(deps, ...pools);
    return { member: await load(req, id) };
  });

  app.delete('/v2.0/lb/members/:id', async (req: ById, reply) => {
    const member = await load(req, req.params.id);
    const pool = await deleteMember(deps.db, String(member.id), deps.clock.now());
    deps.log.info({ memberId: member.id, poolId: pool }, 'member deleted');
    tell(deps, pool);
    return reply.status(204).send();
  });
}
