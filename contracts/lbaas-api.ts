/**
 * Neutron LBaaS v1 request bodies (/v2.0/lb/pools, members, vips, health_monitors and a
 * pool's health monitor association), as neutron-lbaas's RESOURCE_ATTRIBUTE_MAP takes them.
 *
 * Invariants: every attribute a request names passes these schemas before anything else
 * looks at it, so a refused request has changed nothing; integers and booleans are taken
 * as Neutron's converters take them (a decimal string such as neutronclient sends is a
 * number), never a float or a word; names and descriptions are at most 255 characters
 * with no control character; url_path, expected_codes (with a range lo <= hi) and an
 * APP_COOKIE's cookie_name match the strict patterns of contracts/lbaas.ts, the only
 * strings of these bodies that ever reach haproxy.cfg; addresses leave in canonical form.
 */
import { ipAddress } from './floatingip.ts';
import {
  COOKIE_NAME,
  expectedCodeList,
  HTTP_METHODS,
  LB_METHODS,
  LB_PROTOCOLS,
  MAX_CONNECTION_LIMIT,
  MAX_MEMBER_WEIGHT,
  MAX_MONITOR_RETRIES,
  MAX_MONITOR_SECONDS,
  MONITOR_TYPES,
  PERSISTENCE_TYPES,
  type PersistenceType,
  UNLIMITED_CONNECTIONS,
  URL_PATH,
} from './lbaas.ts';
import { boolLike, intLike as neutronInt } from './network.ts';
import {
  isPlainObject,
  nullable,
  obj,
  oneOf,
  optional,
  projectId,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';

/** Neutron's convert_to_int in min..max (contracts/network.ts, shared by every Neutron body). */
const intLike = (min: number, max: number) => neutronInt({ min, max });

/** connection_limit: -1 (unlimited) or 1..MAX_CONNECTION_LIMIT. */
function connectionLimit(): Schema<number> {
  const n = intLike(UNLIMITED_CONNECTIONS, MAX_CONNECTION_LIMIT);
  return {
    kind: 'integer',
    parse(value, path = '') {
      const v = n.parse(value, path);
      if (v === 0) throw new ValidationError(path, 'must be -1 (unlimited) or a positive integer');
      return v;
    },
  };
}

/** expected_codes: `200`, `200,202` or `200-204` (lo <= hi), nothing else. */
function expectedCodes(): Schema<string> {
  const text = str({ max: 64 });
  return {
    kind: 'string',
    parse(value, path = '') {
      const v = text.parse(value, path);
      if (expectedCodeList(v) === undefined)
        throw new ValidationError(
          path,
          "must be one HTTP code, codes separated by commas or a range lo-hi, e.g. '200', '200,202' or '200-204'",
        );
      return v;
    },
  };
}

export interface PersistenceRequest {
  type: PersistenceType;
  cookie_name: string | null;
}

/** session_persistence: null or {} means none; cookie_name only, and always, with APP_COOKIE. */
function sessionPersistence(): Schema<PersistenceRequest | null> {
  const shape = obj({
    type: oneOf(PERSISTENCE_TYPES),
    cookie_name: optional(str({ max: 1024 })),
  });
  const cookie = str({ pattern: COOKIE_NAME, patternName: 'a cookie name ([A-Za-z0-9_-]{1,64})' });
  return {
    kind: 'object',
    parse(value, path = '') {
      if (value === null || (isPlainObject(value) && Object.keys(value).length === 0)) return null;
      const sp = shape.parse(value, path);
      const at = `${path}.cookie_name`;
      if (sp.type !== 'APP_COOKIE') {
        if (sp.cookie_name !== undefined)
          throw new ValidationError(at, `is not allowed for ${sp.type} session persistence`);
        return { type: sp.type, cookie_name: null };
      }
      if (sp.cookie_name === undefined)
        throw new ValidationError(at, 'is required for APP_COOKIE session persistence');
      return { type: sp.type, cookie_name: cookie.parse(sp.cookie_name, at) };
    },
  };
}

const name = () => str({ max: 255 });
const owner = { tenant_id: optional(projectId()), project_id: optional(projectId()) };
const port = () => intLike(1, 65535);
const seconds = () => intLike(1, MAX_MONITOR_SECONDS);

export const PoolCreate = obj({
  pool: obj({
    ...owner,
    name: optional(name()),
    description: optional(name()),
    subnet_id: uuid(),
    protocol: oneOf(LB_PROTOCOLS),
    lb_method: oneOf(LB_METHODS),
    provider: optional(str({ max: 255 })),
    admin_state_up: optional(boolLike()),
  }),
});
export type PoolCreate = ReturnType<typeof PoolCreate.parse>['pool'];

export const PoolUpdate = obj({
  pool: obj({
    name: optional(name()),
    description: optional(name()),
    lb_method: optional(oneOf(LB_METHODS)),
    admin_state_up: optional(boolLike()),
  }),
});
export type PoolUpdate = ReturnType<typeof PoolUpdate.parse>['pool'];

export const MemberCreate = obj({
  member: obj({
    ...owner,
    pool_id: uuid(),
    address: ipAddress(),
    protocol_port: port(),
    weight: optional(intLike(0, MAX_MEMBER_WEIGHT)),
    admin_state_up: optional(boolLike()),
  }),
});
export type MemberCreate = ReturnType<typeof MemberCreate.parse>['member'];

export const MemberUpdate = obj({
  member: obj({
    pool_id: optional(uuid()),
    weight: optional(intLike(0, MAX_MEMBER_WEIGHT)),
    admin_state_up: optional(boolLike()),
  }),
});
export type MemberUpdate = ReturnType<typeof MemberUpdate.parse>['member'];

export const VipCreate = obj({
  vip: obj({
    ...owner,
    name: optional(name()),
    description: optional(name()),
    subnet_id: uuid(),
    address: optional(nullable(ipAddress())),
    protocol_port: port(),
    protocol: oneOf(LB_PROTOCOLS),
    pool_id: uuid(),
    session_persistence: optional(sessionPersistence()),
    connection_limit: optional(connectionLimit()),
    admin_state_up: optional(boolLike()),
  }),
});
export type VipCreate = ReturnType<typeof VipCreate.parse>['vip'];

export const VipUpdate = obj({
  vip: obj({
    name: optional(name()),
    description: optional(name()),
    pool_id: optional(uuid()),
    session_persistence: optional(sessionPersistence()),
    connection_limit: optional(connectionLimit()),
    admin_state_up: optional(boolLike()),
  }),
});
export type VipUpdate = ReturnType<typeof VipUpdate.parse>['vip'];

const monitorTunables = {
  delay: seconds(),
  timeout: seconds(),
  max_retries: intLike(1, MAX_MONITOR_RETRIES),
  http_method: optional(oneOf(HTTP_METHODS)),
  url_path: optional(
    str({
      pattern: URL_PATH,
      patternName: "an absolute path such as '/' (no spaces, quotes or '#')",
    }),
  ),
  expected_codes: optional(expectedCodes()),
  admin_state_up: optional(boolLike()),
};

export const MonitorCreate = obj({
  health_monitor: obj({ ...owner, type: oneOf(MONITOR_TYPES), ...monitorTunables }),
});
export type MonitorCreate = ReturnType<typeof MonitorCreate.parse>['health_monitor'];

export const MonitorUpdate = obj({
  health_monitor: obj({
    ...monitorTunables,
    delay: optional(seconds()),
    timeout: optional(seconds()),
    max_retries: optional(intLike(1, MAX_MONITOR_RETRIES)),
  }),
});
export type MonitorUpdate = ReturnType<typeof MonitorUpdate.parse>['health_monitor'];

/** POST /v2.0/lb/pools/{id}/health_monitors. */
export const MonitorAssociate = obj({
  health_monitor: obj({ ...owner, id: uuid() }),
});
