/**
 * The service catalog, derived from configuration alone: kumo-api's identity listener and
 * its service roots (devstack's layout), each with a public, internal and admin endpoint
 * in the configured region.
 *
 * Invariants: pure — the same settings give the same catalog on every replica, with the
 * same ids (hashes of the service type and interface, never random), so an endpoint id
 * a client saw stays valid across restarts and replicas; the URLs are the configured
 * public endpoints, never a request's Host header. Because the catalog is configuration,
 * the API offers no way to change it (auth-catalog.ts refuses writes).
 */
import { createHash } from 'node:crypto';
import type { IdentitySettings } from './deps.ts';

export const INTERFACES = ['public', 'internal', 'admin'] as const;
export type Interface = (typeof INTERFACES)[number];

export interface CatalogEndpoint {
  id: string;
  interface: Interface;
  region: string;
  region_id: string;
  url: string;
}

export interface CatalogService {
  id: string;
  type: string;
  name: string;
  description: string;
  endpoints: CatalogEndpoint[];
}

/** A 32-hex id, stable for `what` (Keystone's ids are uuid4 hex; ours must be stable). */
export const stableId = (what: string) =>
  createHash('sha256').update(`kumo-catalog:${what}`).digest('hex').slice(0, 32);

interface ServiceSpec {
  type: string;
  name: string;
  description: string;
  url: (e: IdentitySettings['endpoints']) => string;
}

/** In Keystone's catalog order of a devstack: identity first. */
const SERVICES: readonly ServiceSpec[] = [
  {
    type: 'identity',
    name: 'keystone',
    description: 'Keystone Identity Service',
    url: (e) => `${e.identity}/v3`,
  },
  {
    type: 'network',
    name: 'neutron',
    description: 'Neutron Networking Service',
    url: (e) => `${e.api}/networking`,
  },
  {
    type: 'compute',
    name: 'nova',
    description: 'Nova Compute Service',
    url: (e) => `${e.api}/compute/v2.1`,
  },
  {
    type: 'image',
    name: 'glance',
    description: 'Glance Image Service',
    url: (e) => `${e.api}/image`,
  },
  {
    // devstack's cinderv3 entry: the project's id is part of the URL, substituted per token.
    type: 'volumev3',
    name: 'cinderv3',
    description: 'Cinder Volume Service V3',
    url: (e) => `${e.api}/volume/v3/$(project_id)s`,
  },
];

const trim = (url: string) => url.replace(/\/+$/, '');

export function buildCatalog(settings: Pick<IdentitySettings, 'region' | 'endpoints'>) {
  const endpoints = {
    identity: trim(settings.endpoints.identity),
    api: trim(settings.endpoints.api),
  };
  return SERVICES.map(
    (s): CatalogService => ({
      id: stableId(`service:${s.type}`),
      type: s.type,
      name: s.name,
      description: s.description,
      endpoints: INTERFACES.map((i) => ({
        id: stableId(`endpoint:${s.type}:${i}`),
        interface: i,
        region: settings.region,
        region_id: settings.region,
        url: s.url(endpoints),
      })),
    }),
  );
}

/** Keystone's URL substitutions (`$(project_id)s`, `%(tenant_id)s`…) for a token's project. */
export const substituteProject = (url: string, projectId: string) =>
  url.replace(/[$%]\((project_id|tenant_id)\)s/g, projectId);

/**
 * The catalog as a token (and GET /v3/auth/catalog) carries it, its URLs substituted
 * for the token's project as Keystone's catalog does; GET /v3/endpoints shows them raw.
 */
export const tokenCatalog = (catalog: readonly CatalogService[], projectId: string) =>
  catalog.map((s) => ({
    endpoints: s.endpoints.map((e) => ({ ...e, url: substituteProject(e.url, projectId) })),
    id: s.id,
    type: s.type,
    name: s.name,
  }));

const self = (base: string, path: string) => ({ self: `${base}/v3/${path}` });

/** GET /v3/services' entry. */
export const serviceView = (s: CatalogService, base: string) => ({
  id: s.id,
  type: s.type,
  name: s.name,
  description: s.description,
  enabled: true,
  links: self(base, `services/${s.id}`),
});

/** GET /v3/endpoints' entries: one per (service, interface). */
export const endpointViews = (catalog: readonly CatalogService[], base: string) =>
  catalog.flatMap((s) =>
    s.endpoints.map((e) => ({
      id: e.id,
      interface: e.interface,
      region: e.region,
      region_id: e.region_id,
      service_id: s.id,
      url: e.url,
      enabled: true,
      links: self(base, `endpoints/${e.id}`),
    })),
  );

/** GET /v3/regions' one region. */
export const regionView = (region: string, base: string) => ({
  id: region,
  description: '',
  parent_region_id: null,
  links: self(base, `regions/${region}`),
});
