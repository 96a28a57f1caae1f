/**
 * Neutron v2.0 routers (l3, ext-gw-mode, extraroute, extraroute-atomic): the request
 * schemas kumo-api validates bodies with and the Router object it returns.
 *
 * Invariants: a body passes one of these schemas whole before anything looks at it; names
 * and descriptions carry no control characters; a route's destination and nexthop, and a
 * gateway's fixed IPs, are shape-checked text (no space, quote or newline passes) that
 * IPAM then parses and normalises; `external_gateway_info` is null or `{}` (no gateway)
 * or names a network (Neutron's type:dict_or_nodata with a required network_id).
 */
import { boolLike, cidrText, ipText, MAX_FIXED_IPS } from './network.ts';
import {
  arr,
  isPlainObject,
  nullable,
  obj,
  optional,
  projectId,
  type Schema,
  str,
  uuid,
} from './schema.ts';

/** Neutron's [DEFAULT] max_routes. */
export const MAX_ROUTES = 30;
/** Routes a body may carry at all (beyond MAX_ROUTES the router refuses them by count). */
const ROUTES_IN_BODY = 1000;

export const Route = obj({ destination: cidrText(), nexthop: ipText() });
export type Route = ReturnType<typeof Route.parse>;

const ExternalFixedIp = obj({ subnet_id: optional(uuid()), ip_address: optional(ipText()) });
export type ExternalFixedIp = ReturnType<typeof ExternalFixedIp.parse>;

const GatewayRequest = obj({
  network_id: uuid(),
  enable_snat: optional(boolLike()),
  external_fixed_ips: optional(arr(ExternalFixedIp, { max: MAX_FIXED_IPS })),
});
export type GatewayRequest = ReturnType<typeof GatewayRequest.parse>;

/** `null` or `{}`: no gateway; otherwise a gateway request. */
function gatewayInfo(): Schema<GatewayRequest | null> {
  return {
    kind: 'object',
    parse(value, path = '') {
      if (value === null || (isPlainObject(value) && Object.keys(value).length === 0)) return null;
      return GatewayRequest.parse(value, path);
    },
  };
}

const routerCommon = {
  name: optional(str({ max: 255 })),
  description: optional(str({ max: 255 })),
  admin_state_up: optional(boolLike()),
  external_gateway_info: optional(gatewayInfo()),
};

/** `routes` is not allowed on create (extraroute: allow_post False). */
export const RouterCreate = obj({
  router: obj({
    ...routerCommon,
    project_id: optional(projectId()),
    tenant_id: optional(projectId()),
  }),
});
export type RouterCreate = ReturnType<typeof RouterCreate.parse>['router'];

/** `routes: null` means no routes (Neutron's convert_none_to_empty_list). */
export const RouterUpdate = obj({
  router: obj({
    ...routerCommon,
    routes: optional(nullable(arr(Route, { max: ROUTES_IN_BODY }))),
  }),
});
export type RouterUpdate = ReturnType<typeof RouterUpdate.parse>['router'];

/** PUT …/add_extraroutes and …/remove_extraroutes (extraroute-atomic). */
export const ExtraRoutes = obj({
  router: obj({ routes: arr(Route, { max: ROUTES_IN_BODY }) }),
});

/** PUT …/add_router_interface and …/remove_router_interface: a subnet or a port. */
export const RouterInterfaceRequest = obj({
  subnet_id: optional(uuid()),
  port_id: optional(uuid()),
});
export type RouterInterfaceRequest = ReturnType<typeof RouterInterfaceRequest.parse>;

export interface ExternalGatewayInfo {
  network_id: string;
  enable_snat: boolean;
  external_fixed_ips: { subnet_id: string; ip_address: string }[];
}

/** A router as the API returns it. */
export interface Router {
  id: string;
  name: string;
  description: string;
  admin_state_up: boolean;
  status: 'ACTIVE';
  external_gateway_info: ExternalGatewayInfo | null;
  routes: { destination: string; nexthop: string }[];
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
  tags: string[];
}

/** The body of add_router_interface / remove_router_interface. */
export interface RouterInterfaceInfo {
  id: string;
  tenant_id: string;
  project_id: string;
  port_id: string;
  subnet_id: string;
  subnet_ids: string[];
  network_id: string;
}
