/**
 * GET /servers and /servers/detail: Nova's list filters, paging and next link.
 *
 * Filters, as Nova applies them: `name` is a regular expression searched anywhere in the
 * name, case-sensitively (nova's db regex filter on its sqlite and PostgreSQL engines:
 * Python's re.search and `~`); `ip` / `ip6` are regular expressions matched at the start
 * of an IPv4 / IPv6 fixed address of the server (nova's _ip_filter: re.match); `ip6` is
 * honoured for non-admins from 2.5 on and ignored before, as Nova drops it;
 * `status`, `flavor`, `image`, `reservation_id` are exact; `host` is the admin's.
 *
 * Scope: a caller lists its project's servers; an admin with `all_tenants` lists every
 * project's (or the one `project_id` / `tenant_id` names); a non-admin's all_tenants is
 * Nova's 403.
 *
 * Invariants: a malformed regular expression is a 400 naming its filter, before any
 * server is read; patterns are bounded in length and run by RE2 (re2js, linear time), so
 * no pattern a client sends can stall the API's event loop as a backtracking engine
 * would; RE2's syntax is Python's without backreferences and lookaround. The page is cut
 * after filtering, so a full page means more may follow.
 */
import type { FastifyRequest } from 'fastify';
import { RE2JS } from 're2js';
import { ApiError } from '../../contracts/errors.ts';
import { serverStatus } from '../../contracts/servers.ts';
import { type InstanceRecord, listInstances } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { atLeast } from '../microversion.ts';
import { callerProjectId } from '../policy.ts';
import { type Query, values } from '../query.ts';
import { base, links, requireAdminNova } from './nova.ts';
import { addressesOf, views } from './server-views.ts';

const MAX_LIMIT = 1000;
const MAX_PATTERN = 255;
/** RE2 instructions a filter may compile to (`\w{255}` is 257): bounds each match's work. */
const MAX_PROGRAM = 512;

type Listing = FastifyRequest<{ Querystring: Query }>;

function limitOf(raw: string | undefined): number {
  if (raw === undefined) return MAX_LIMIT;
  if (!/^\d{1,9}$/.test(raw))
    throw new ApiError('BadRequest', `Invalid input for query parameter limit: '${raw}'.`);
  return Math.min(Number(raw), MAX_LIMIT);
}

/** A compiled filter: `test` searches (re.search) or, anchored, matches at the start. */
export interface FilterPattern {
  test(text: string): boolean;
}

/** The sum of a pattern's counted-repeat bounds (`{m}`, `{m,}`, `{m,n}`): its largest cost. */
function repeatBudget(raw: string): number {
  let sum = 0;
  for (const m of raw.matchAll(/\{(\d{1,9})(?:,(\d{0,9}))?\}/g))
    sum += Math.max(Number(m[1]), Number(m[2] || 0));
  return sum;
}

/** A filter's regular expression; `anchored` matches at the start only (re.match). */
export function filterRegex(filter: string, raw: string, anchored: boolean): FilterPattern {
  if (raw.length > MAX_PATTERN)
    throw new ApiError(
      'BadRequest',
      `Invalid input for query parameter ${filter}: the pattern is longer than ${MAX_PATTERN} characters.`,
    );
  try {
    // Counted repeats are what make RE2 programs large: bounded before compiling, so a
    // refused pattern costs no compile either.
    if (repeatBudget(raw) > MAX_PROGRAM) throw new Error('the pattern is too complex');
    const re = RE2JS.compile(raw);
    if (re.programSize() > MAX_PROGRAM) throw new Error('the pattern is too complex');
    return {
      test: (text) => (anchored ? re.matcher(text).lookingAt() : re.matcher(text).find()),
    };
  } catch (e) {
    throw new ApiError(
      'BadRequest',
      `Invalid input for query parameter ${filter}: '${raw}' is not a valid regular expression (${(e as Error).message}).`,
    );
  }
}

/** The ip / ip6 patterns a request's filters ask for (ip6 per its microversion). */
function ipPatterns(req: Listing) {
  const one = (k: string) => values(req.query[k])[0];
  const ip = one('ip');
  const ip6 = req.role === 'admin' || atLeast(req, 5) ? one('ip6') : undefined;
  return {
    4: ip === undefined ? undefined : filterRegex('ip', ip, true),
    6: ip6 === undefined ? undefined : filterRegex('ip6', ip6, true),
  };
}

/** Servers with a fixed address of either version matching its pattern. */
async function byAddress(deps: AppDeps, list: InstanceRecord[], p: ReturnType<typeof ipPatterns>) {
  if (!p[4] && !p[6]) return list;
  const addr = await addressesOf(deps, list);
  return list.filter((i) =>
    Object.values(addr.get(i.id) ?? {})
      .flat()
      .some((a) => p[a.version]?.test(a.addr) === true),
  );
}

/** The exact-match filters: status (any of), flavor, image, reservation_id. */
function exactFilters(q: Query, list: InstanceRecord[]): InstanceRecord[] {
  const statuses = values(q.status).map((s) => s.toUpperCase());
  let out = statuses.length
    ? list.filter((i) => statuses.includes(serverStatus(i.vmState, i.taskState)))
    : list;
  for (const [key, of] of [
    ['flavor', (i: InstanceRecord) => i.flavor.id],
    ['image', (i: InstanceRecord) => i.imageId],
    ['reservation_id', (i: InstanceRecord) => i.reservationId],
  ] as const) {
    const v = values(q[key])[0];
    if (v !== undefined) out = out.filter((i) => of(i) === v);
  }
  return out;
}

const TRUE_WORDS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_WORDS = ['0', 'f', 'false', 'off', 'n', 'no'];

/** Nova's is_all_tenants: present and empty is true, else oslo's bool_from_string (strict). */
function allTenants(raw: string | undefined): boolean {
  if (raw === undefined) return false;
  const v = raw.trim().toLowerCase();
  if (v === '' || TRUE_WORDS.includes(v)) return true;
  if (FALSE_WORDS.includes(v)) return false;
  throw new ApiError(
    'BadRequest',
    `Unrecognized value '${raw}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'`,
  );
}

/**
 * The projects a list covers: the caller's, or with all_tenants (admin only: Nova's
 * servers:index:get_all_tenants is admin_api, 403 otherwise) every project, narrowed by
 * the admin's project_id / tenant_id filter (Nova drops those for non-admins).
 */
function projectsOf(req: Listing, detail: boolean): string[] | undefined {
  const one = (k: string) => values(req.query[k])[0];
  if (!allTenants(one('all_tenants'))) return [callerProjectId(req)];
  const rule = `os_compute_api:servers:${detail ? 'detail' : 'index'}:get_all_tenants`;
  requireAdminNova(req, rule);
  const named = one('project_id') ?? one('tenant_id');
  return named === undefined ? undefined : [named];
}

/** The servers a list query selects, and the next-page marker when the page is full. */
async function listFor(deps: AppDeps, req: Listing, detail: boolean) {
  const q = req.query;
  const projects = projectsOf(req, detail);
  const one = (k: string) => values(q[k])[0];
  const rawName = one('name');
  const name = rawName === undefined ? undefined : filterRegex('name', rawName, false);
  const ips = ipPatterns(req);
  const limit = limitOf(one('limit'));
  const hosts = req.role === 'admin' && q.host !== undefined ? values(q.host) : undefined;
  let list = await listInstances(deps.db, {
    ...(hosts ? { hosts } : {}),
    ...(projects ? { projects } : {}),
  });
  if (name) list = list.filter((i) => name.test(i.name));
  list = await byAddress(deps, exactFilters(q, list), ips);
  const marker = one('marker');
  if (marker !== undefined) {
    const at = list.findIndex((i) => i.id === marker);
    if (at < 0) throw new ApiError('BadRequest', `marker [${marker}] not found`);
    list = list.slice(at + 1);
  }
  const next = list.length > limit ? list[limit - 1]?.id : undefined;
  return { list: list.slice(0, limit), next, limit };
}

/** GET /servers and /servers/detail: a page, with the next-page link when it is full. */
export async function listServers(deps: AppDeps, req: Listing, prefix: string, detail: boolean) {
  const { list, next, limit } = await listFor(deps, req, detail);
  const servers = detail
    ? await views(deps, req, prefix, list)
    : list.map((i) => ({ id: i.id, name: i.name, links: links(req, prefix, 'servers', i.id) }));
  if (next === undefined) return { servers };
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query))
    if (k !== 'marker' && k !== 'limit') for (const x of values(v)) params.append(k, x);
  params.append('limit', String(limit));
  params.append('marker', next);
  const path = `/servers${detail ? '/detail' : ''}?${params.toString()}`;
  return { servers, servers_links: [{ rel: 'next', href: `${base(req, prefix)}${path}` }] };
}
