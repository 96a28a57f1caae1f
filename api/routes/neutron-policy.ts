/**
 * Neutron's policy for networks, subnets and ports (neutron/conf/policies/{network,subnet,
 * port}.py and the checks of neutron/api/v2/base.py), as pure functions of the caller and
 * the rows involved.
 *
 * Invariants: a row the caller may not see is answered exactly as a missing one (404, left
 * out of lists) and only a row it may see can earn a 403; an attribute is policed when it
 * is explicitly set — on create only when it differs from its default (Neutron does not
 * police a default value), on update whenever it is named; the 403 message spells the rule
 * Neutron would have checked, e.g. `(rule:create_network and rule:create_network:shared)
 * is disallowed by policy`; admin-only attributes are hidden from non-admins in every view.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { Network } from '../../contracts/network.ts';
import { isPlainObject } from '../../contracts/schema.ts';
import { callerProjectId } from '../policy.ts';

/** A policed attribute's default on create; `undefined`: any value set is policed. */
export type PolicedAttrs = Readonly<Record<string, unknown>>;

/** Neutron's network attributes with `enforce_policy` (all admin-only), in its order. */
export const NETWORK_POLICED: PolicedAttrs = {
  shared: false,
  'provider:network_type': undefined,
  'provider:physical_network': undefined,
  'provider:segmentation_id': undefined,
  'router:external': false,
};

/** Neutron's port attributes with `enforce_policy`, in its order. */
export const PORT_POLICED: PolicedAttrs = {
  mac_address: undefined,
  fixed_ips: undefined,
  device_owner: '',
  'binding:vnic_type': 'normal',
  'binding:host_id': undefined,
  'binding:profile': undefined,
  port_security_enabled: undefined,
  allowed_address_pairs: undefined,
};

/** Attributes only an admin sees (get_network:provider:*, get_port:binding:*). */
export const HIDDEN_NETWORK_ATTRS = [
  'provider:network_type',
  'provider:physical_network',
  'provider:segmentation_id',
] as const;
export const HIDDEN_PORT_ATTRS = [
  'binding:host_id',
  'binding:vif_type',
  'binding:vif_details',
  'binding:profile',
] as const;

/** The attributes of `item` the rule of `action` polices, in Neutron's order. */
export function policedAttrs(
  item: Readonly<Record<string, unknown>>,
  attrs: PolicedAttrs,
  create: boolean,
): string[] {
  return Object.entries(attrs)
    .filter(([a, dflt]) => {
      const v = item[a];
      if (v === undefined) return false;
      return !create || dflt === undefined || v !== dflt;
    })
    .map(([a]) => a);
}

/** `rule:A:attr`, with the sub-attribute rules of a list of objects (fixed_ips). */
function attrRule(action: string, attr: string, value: unknown): string {
  const rule = `rule:${action}:${attr}`;
  if (!Array.isArray(value)) return rule;
  const subs = value.flatMap((v) =>
    isPlainObject(v) ? Object.keys(v).map((k) => `${rule}:${k}`) : [],
  );
  return subs.length ? `(${rule} and (${subs.join(' and ')}))` : rule;
}

/** Neutron's 403 for `action`, naming the rules of the policed attributes of `item`. */
export function disallowed(
  action: string,
  attrs: readonly string[] = [],
  item: Readonly<Record<string, unknown>> = {},
): ApiError {
  const rule = attrs.reduce(
    (acc, a) => `(${acc} and ${attrRule(action, a, item[a])})`,
    `rule:${action}`,
  );
  return new ApiError('PolicyNotAuthorized', `${rule} is disallowed by policy`);
}

export const isAdmin = (req: FastifyRequest) => req.caller.isAdmin;

/** Whether the caller's project is `projectId` (admins own nothing more by this test). */
export const ownedBy = (req: FastifyRequest, projectId: string) =>
  projectId === callerProjectId(req);

/** get_network: admin, owner, shared or external. */
export const seesNetwork = (req: FastifyRequest, n: Network) =>
  isAdmin(req) || ownedBy(req, n.project_id) || n.shared || n['router:external'];

/** `item` without the attributes a non-admin may not see. */
export function hideFrom<T extends object>(
  req: FastifyRequest,
  item: T,
  hidden: readonly string[],
): Partial<T> {
  if (isAdmin(req)) return item;
  return Object.fromEntries(
    Object.entries(item).filter(([k]) => !hidden.includes(k)),
  ) as Partial<T>;
}

/** A filter spec without the attributes a non-admin may not see (nor filter, nor sort by). */
export function visibleFilters<F extends Record<string, unknown>>(
  req: FastifyRequest,
  filters: F,
  hidden: readonly string[],
): F {
  if (isAdmin(req)) return filters;
  return Object.fromEntries(Object.entries(filters).filter(([k]) => !hidden.includes(k))) as F;
}

/** Neutron's _validate_network_tenant_ownership: a subnet or port on another's private net. */
export function notOnThisNetwork(owner: string, resource: 'subnet' | 'port'): ApiError {
  return new ApiError(
    'HTTPForbidden',
    `Tenant ${owner} not allowed to create ${resource} on this network`,
  );
}
