/**
 * POST /servers: Nova 2.1's create, one server or a batch (min_count/max_count).
 *
 * Invariants: the request is checked whole — counts, security groups, flavor, image and
 * its kernel/ramdisk, networks, ports, fixed IPs — before anything is written, so a
 * refused one creates nothing. Each server of a batch is placed and inserted as a single
 * create is (its host pick and row one transaction; a server no host can take is ERROR
 * "No valid host"), and reaches its host only with its ports. A batch shares one
 * reservation id (`r-` + 8 of [a-z0-9]) and one admin password; its servers are named
 * `<name>-<i>` (i from 1) with launch indexes 0..n-1, as Nova's multi-create does. The
 * password (asked for, or Nova's generate_password: 12 characters, one of each of its
 * groups) is stored for the metadata service and answered once, never logged; so are the
 * key pair's public key as it is at create (key_name: the caller's own key pair), the
 * user data (strict base64) and whether a config drive was asked for. Servers
 * are the caller's project's; the quota (instances, cores, ram) is checked in each
 * server's insert transaction (nova-quota-rules.ts): the first settles how many of
 * min..max fit, or refuses with Nova's 403 before anything is written.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { DOMAIN_LIMITS, ServerCreate } from '../../contracts/servers.ts';
import type { Queryable } from '../db/index.ts';
import { getKeypair } from '../db/keypairs.ts';
import { resolveServerGroups } from '../db/nova-secgroups.ts';
import {
  type FlavorSnapshot,
  type ImageMeta,
  insertInstance,
  type NewInstance,
} from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId } from '../policy.ts';
import {
  buildFault,
  handOverInstance,
  keptOf,
  type Nic,
  NO_VALID_HOST,
  type Placement,
  placeInstance,
} from '../scheduler/compute.ts';
import { callerUserId } from './keypairs.ts';
import { neutronQuota } from './neutron-quotas.ts';
import { admitServers } from './nova-quota-rules.ts';
import { resolveFlavor, resolveImage, resolveNics } from './server-refs.ts';

const bad = (message: string) => new ApiError('BadRequest', message);

/** Nova's DEFAULT_PASSWORD_SYMBOLS: no 0, 1, I, O or l. */
const PASSWORD_GROUPS = ['23456789', 'ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz'];
const PASSWORD_LENGTH = 12;
const pick = (s: string) => s[randomInt(s.length)] as string;

/** Nova's utils.generate_password: one of each group, the rest of any, shuffled. */
export function generatePassword(): string {
  const chars = PASSWORD_GROUPS.map(pick);
  const all = PASSWORD_GROUPS.join('');
  while (chars.length < PASSWORD_LENGTH) chars.push(pick(all));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j] as string, chars[i] as string];
  }
  return chars.join('');
}

const RESERVATION_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** Nova's generate_uid('r'): `r-` and 8 of [a-z0-9]. */
export const reservationId = () =>
  `r-${Array.from({ length: 8 }, () => pick(RESERVATION_CHARS)).join('')}`;

/** min_count <= max_count; a batch names no port or fixed IP (Nova's messages). */
function countsOf(body: ServerCreate): { min: number; max: number } {
  const min = body.min_count ?? 1;
  const max = body.max_count ?? min;
  if (min > max) throw bad('min_count must be <= max_count');
  if (max > 1 && Array.isArray(body.networks)) {
    if (body.networks.some((n) => n.fixed_ip !== undefined))
      throw bad('max_count cannot be greater than 1 if an fixed_ip is specified.');
    if (body.networks.some((n) => n.port !== undefined))
      throw bad(
        'Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.',
      );
  }
  const longest = body.name.length + `-${max}`.length;
  if (max > 1 && longest > DOMAIN_LIMITS.text)
    throw bad(
      `Invalid input for field/attribute server.name. Value: the names ${body.name}-1..${max} of a batch must be at most ${DOMAIN_LIMITS.text} characters.`,
    );
  return { min, max };
}

/**
 * The groups' names (default when none), each the project's (Nova's 400 otherwise), and
 * the ids its new ports get: none for `default` alone (Neutron gives a port its project's
 * default group itself, and none on a network without port security, as Nova's
 * _clean_security_groups), else every group's.
 */
async function securityGroupsOf(deps: AppDeps, body: ServerCreate, projectId: string) {
  const names = [...new Set((body.security_groups ?? []).flatMap((g) => g.name ?? []))];
  if (names.length === 0 || (names.length === 1 && names[0] === 'default'))
    return { names: ['default'], ids: undefined };
  const groups = await resolveServerGroups(deps.db, projectId, names, deps.clock.now());
  return { names: groups.map((g) => g.name), ids: groups.map((g) => g.id) };
}

interface Batch {
  body: ServerCreate;
  /** max_count until the quota check of the first server settles how many fit. */
  count: number;
  min: number;
  projectId: string;
  flavor: FlavorSnapshot;
  imageMeta: ImageMeta;
  nics: Nic[];
  securityGroups: string[];
  /** The groups of the ports it makes; undefined: Neutron's default. */
  securityGroupIds: string[] | undefined;
  adminPass: string;
  reservationId: string;
  /** The key pair (name, public key now) the servers boot with, or nulls. */
  key: { name: string | null; data: string | null };
}

/** The row of one server of the batch: building on its host, or ERROR when none could take it. */
function newInstance(
  req: FastifyRequest,
  b: Batch,
  id: string,
  index: number,
  p: Placement,
  now: Date,
): NewInstance {
  return {
    id,
    name: b.count > 1 ? `${b.body.name}-${index + 1}` : b.body.name,
    projectId: b.projectId,
    userId: callerUserId(req),
    flavor: b.flavor,
    imageMeta: b.imageMeta,
    metadata: b.body.metadata ?? {},
    keptPorts: keptOf(b.nics),
    host: p.host ?? '',
    vmState: p.host === null ? 'error' : 'building',
    taskState: p.host === null ? null : 'scheduling',
    fault: p.host === null ? buildFault(NO_VALID_HOST, p.reasons.join('; '), now) : null,
    accessIPv4: b.body.accessIPv4 ?? '',
    accessIPv6: b.body.accessIPv6 ?? '',
    adminPass: b.adminPass,
    reservationId: b.reservationId,
    launchIndex: index,
    securityGroups: b.securityGroups,
    keyName: b.key.name,
    keyData: b.key.data,
    userData: b.body.user_data ?? null,
    configDrive: b.body.config_drive ?? false,
  };
}

/**
 * The quota check of one member, in its insert's transaction: the first settles how many
 * of min..max fit (Nova's count); a later one still needs room for itself, which only a
 * concurrent create can have taken meanwhile.
 */
async function admitMember(tx: Queryable, deps: AppDeps, b: Batch, index: number) {
  const { vcpus, ram } = b.flavor;
  const [min, max] = index === 0 ? [b.min, b.count] : [1, 1];
  const fit = await admitServers(tx, deps, { projectId: b.projectId, vcpus, ram, min, max });
  if (index === 0) b.count = fit;
}

/** Places and inserts one server of the batch, then hands it to its host. */
async function createOne(deps: AppDeps, req: FastifyRequest, b: Batch, index: number) {
  const id = randomUUID();
  const now = deps.clock.now();
  const { flavor } = b;
  const demand = { vcpus: flavor.vcpus, ramMb: flavor.ram, diskGb: flavor.disk };
  const placed = await placeInstance(
    deps.db,
    { now, agentDownTime: deps.settings.agentDownTime },
    demand,
    async (tx, p, seq) => {
      await admitMember(tx, deps, b, index);
      await insertInstance(tx, seq, newInstance(req, b, id, index, p, now), now);
    },
  );
  const log = { instanceId: id, host: placed.host, seq: placed.seq, reservation: b.reservationId };
  if (placed.host === null) {
    deps.log.warn({ ...log, reasons: placed.reasons }, 'no valid host for instance');
  } else {
    deps.log.info(log, 'instance scheduled');
    await handOverInstance(
      deps,
      id,
      placed.host,
      b.nics.map((n) => ({ ...n })),
      { projectId: b.projectId, quota: neutronQuota(deps), securityGroups: b.securityGroupIds },
    );
  }
  return id;
}

/** The caller's key pair `key_name` names (Nova's 400 when the caller has none of that name). */
async function keyOf(deps: AppDeps, req: FastifyRequest, name: string | undefined) {
  if (name === undefined) return { name: null, data: null };
  const k = await getKeypair(deps.db, callerUserId(req), name);
  if (!k) throw bad('Invalid key_name provided.');
  return { name: k.name, data: k.public_key };
}

/** Checks the request whole, then creates its servers one by one, in launch order. */
export async function createServers(deps: AppDeps, req: FastifyRequest) {
  const body = ServerCreate.parse(req.body).server;
  const { min, max } = countsOf(body);
  const projectId = callerProjectId(req);
  const groups = await securityGroupsOf(deps, body, projectId);
  const flavor = await resolveFlavor(deps.db, req, body.flavorRef);
  const imageMeta = await resolveImage(deps.db, body.imageRef, flavor, req);
  const nics = await resolveNics(deps.db, req, body.networks);
  const key = await keyOf(deps, req, body.key_name);
  const batch: Batch = {
    body,
    count: max,
    min,
    projectId,
    flavor,
    imageMeta,
    nics,
    securityGroups: groups.names,
    securityGroupIds: groups.ids,
    adminPass: body.adminPass ?? generatePassword(),
    reservationId: reservationId(),
    key,
  };
  const ids = [await createOne(deps, req, batch, 0)];
  for (let index = 1; index < batch.count; index++) {
    const id = await createOne(deps, req, batch, index).catch((e: unknown) => {
      if (e instanceof ApiError && e.type === 'QuotaExceeded') return undefined;
      throw e;
    });
    if (id === undefined) break;
    ids.push(id);
  }
  return { ids, batch };
}
