/**
 * Neutron v2.0 floating IPs (the `router` extension's floatingips resource, with the
 * standard attributes): the request schemas and the object the API returns.
 *
 * Invariants: every request attribute passes these schemas before anything else looks at
 * it; an address is accepted only when it is exactly one IPv4 or IPv6 address (the strict
 * parser of inet.ts, after ipText's shape check) and leaves the schema in canonical form,
 * so a newline, a space or a quote in it is a 400 naming the field and equal addresses
 * compare equal; an update naming an attribute Neutron never lets a client change is
 * refused, naming it, before typing.
 */
import { canonicalIp } from './inet.ts';
import type { FloatingIpStatus } from './l3.ts';
import { ipText } from './network.ts';
import {
  isPlainObject,
  nullable,
  obj,
  optional,
  projectId,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';

/** An IP address, strictly parsed and returned in canonical text form. */
export function ipAddress(): Schema<string> {
  const text = ipText();
  return {
    kind: 'string',
    parse(value, path = '') {
      const canonical = canonicalIp(text.parse(value, path));
      if (canonical === undefined) throw new ValidationError(path, 'must be an IP address');
      return canonical;
    },
  };
}

const description = () => str({ max: 255 });

export const FloatingIpCreate = obj({
  floatingip: obj({
    floating_network_id: uuid(),
    floating_ip_address: optional(nullable(ipAddress())),
    subnet_id: optional(nullable(uuid())),
    port_id: optional(nullable(uuid())),
    fixed_ip_address: optional(nullable(ipAddress())),
    description: optional(description()),
    project_id: optional(projectId()),
    tenant_id: optional(projectId()),
  }),
});
export type FloatingIpCreate = ReturnType<typeof FloatingIpCreate.parse>['floatingip'];

/** `port_id: null` disassociates; a port_id alone picks the port's one IPv4 address. */
export const FloatingIpUpdate = obj({
  floatingip: obj({
    port_id: optional(nullable(uuid())),
    fixed_ip_address: optional(nullable(ipAddress())),
    description: optional(description()),
  }),
});
export type FloatingIpUpdate = ReturnType<typeof FloatingIpUpdate.parse>['floatingip'];

/** Attributes the API sets, or a create fixes, that an update may not name. */
const NOT_UPDATABLE: readonly string[] = [
  'id',
  'status',
  'project_id',
  'tenant_id',
  'created_at',
  'updated_at',
  'revision_number',
  'floating_network_id',
  'floating_ip_address',
  'subnet_id',
  'router_id',
];

/** Refuses an update naming a read-only or create-only attribute, naming the first one. */
export function refuseFloatingIpReadOnly(body: unknown): void {
  const inner = isPlainObject(body) ? body.floatingip : undefined;
  if (!isPlainObject(inner)) return;
  const bad = Object.keys(inner).find((k) => NOT_UPDATABLE.includes(k));
  if (bad !== undefined) throw new ValidationError(`floatingip.${bad}`, 'cannot be updated');
}

/** A floating IP as the API returns it: Neutron's core attributes and standard attributes. */
export interface FloatingIp {
  id: string;
  floating_ip_address: string;
  floating_network_id: string;
  router_id: string | null;
  port_id: string | null;
  fixed_ip_address: string | null;
  status: FloatingIpStatus;
  description: string;
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
  tags: string[];
}
