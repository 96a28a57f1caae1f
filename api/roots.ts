/**
 * One root per service on the API's one port, as devstack lays them out: `/compute`
 * (Nova), `/image` (Glance), `/networking` (Neutron), `/volume` (Cinder, its paths all
 * under `/v3`); `/identity` is the identity listener's. The routes themselves are
 * registered once, at the paths today's single-endpoint clients use (`/v2.1/servers`,
 * `/servers`, `/v2/images`, `/v2.0/ports`); `rewriteUrl` strips a service root before
 * routing and remembers it on the raw request.
 *
 * Invariants: the family of a request (and so its error shape) is its root's service when
 * it came in through one, else what its path names (familyOf); links built for a request
 * start with the public endpoint plus the root it came in through, so a client stays
 * under the root it was given. A root alone (`/compute`, `/compute/`) is that service's
 * version document, never rewritten.
 */
import type { IncomingMessage } from 'node:http';

/** Nova's, Glance's, Cinder's and Neutron's (the rest) paths; Keystone's on its own listener. */
export type Family = 'neutron' | 'nova' | 'glance' | 'cinder' | 'keystone';

export const SERVICE_ROOTS = {
  '/compute': 'nova',
  '/image': 'glance',
  '/networking': 'neutron',
  '/volume': 'cinder',
} as const satisfies Record<string, Family>;

export type ServiceRoot = keyof typeof SERVICE_ROOTS | '';

const ROOT_PATH = /^(\/compute|\/image|\/networking|\/volume)(\/[^?]*)?(\?.*)?$/;
const NOVA_PATHS = /^\/(v2\.1|servers|flavors|os-[a-z-]+|limits|extensions)(\/|\?|$)/;
const GLANCE_PATHS = /^\/(v2|images|schemas|versions)(\/|\?|$)/;
const CINDER_PATHS = /^\/v3(\/|\?|$)/;

/** The raw request as rewriteUrl leaves it: the service root it came in through. */
type Rooted = IncomingMessage & { kumoRoot?: ServiceRoot };

/** The root `url` starts with and the path after it ('' and `url` when none). */
export function splitRoot(url: string): { root: ServiceRoot; rest: string } {
  const m = ROOT_PATH.exec(url);
  if (!m) return { root: '', rest: url };
  return { root: m[1] as ServiceRoot, rest: `${m[2] ?? ''}${m[3] ?? ''}` };
}

/** The family of a path, with or without its service root. */
export function familyOf(url: string): Family {
  const { root, rest } = splitRoot(url);
  if (root) return SERVICE_ROOTS[root];
  if (NOVA_PATHS.test(rest)) return 'nova';
  if (CINDER_PATHS.test(rest)) return 'cinder';
  return GLANCE_PATHS.test(rest) ? 'glance' : 'neutron';
}

/**
 * fastify's `rewriteUrl`: `/compute/v2.1/servers` is routed as `/v2.1/servers`. A root
 * alone, or with only `/`, keeps its path (its version document's route); so does a path
 * of another service under a root (`/image/v2.1/servers`), which no route has: it is a
 * 404 in the root's shape, never another service's answer.
 */
export function rewriteUrl(raw: IncomingMessage): string {
  const url = raw.url ?? '/';
  const { root, rest } = splitRoot(url);
  (raw as Rooted).kumoRoot = root;
  if (!root || rest === '' || rest === '/' || rest.startsWith('?') || rest.startsWith('/?'))
    return url;
  return familyOf(rest) === SERVICE_ROOTS[root] ? rest : url;
}

/** The root the request came in through ('' for the legacy single-endpoint paths). */
export const rootOf = (raw: IncomingMessage): ServiceRoot => (raw as Rooted).kumoRoot ?? '';

/** The request's family: its root's service, else what its (rewritten) path names. */
export function requestFamily(raw: IncomingMessage, url: string): Family {
  const root = rootOf(raw);
  return root ? SERVICE_ROOTS[root] : familyOf(url);
}
