/**
 * The one catalogue of error codes. HTTP routes answer with Neutron's body shape
 * `{"NeutronError": {type, message, detail}}`; agents classify failures as transient
 * (retry with backoff) or permanent (the resource goes ERROR with the reason).
 *
 * Invariant: every error a client can see has a type from this table and a message that
 * names the field or resource at fault.
 */

export const API_ERRORS = {
  BadRequest: 400,
  NotAuthenticated: 401,
  PolicyNotAuthorized: 403,
  HTTPForbidden: 403,
  NotFound: 404,
  AgentNotFound: 404,
  NetworkNotFound: 404,
  SubnetNotFound: 404,
  PortNotFound: 404,
  RouterNotFound: 404,
  RouterInterfaceNotFound: 404,
  RouterInterfaceNotFoundForSubnet: 404,
  FloatingIPNotFound: 404,
  ExternalGatewayForFloatingIPNotFound: 404,
  InvalidL3Agent: 404,
  InvalidLbaasAgent: 404,
  PoolNotFound: 404,
  MemberNotFound: 404,
  VipNotFound: 404,
  HealthMonitorNotFound: 404,
  PoolMonitorAssociationNotFound: 404,
  ProtocolMismatch: 400,
  DelayOrTimeoutInvalid: 400,
  ServiceProviderNotFound: 400,
  NotAuthorized: 403,
  VipExists: 409,
  MemberExists: 409,
  PoolInUse: 409,
  HealthMonitorInUse: 409,
  PoolMonitorAssociationExists: 409,
  SecurityGroupNotFound: 404,
  SecurityGroupRuleNotFound: 404,
  SecurityGroupInvalidPortRange: 400,
  SecurityGroupInvalidPortValue: 400,
  SecurityGroupInvalidIcmpValue: 400,
  SecurityGroupInvalidProtocolForPort: 400,
  SecurityGroupMissingIcmpType: 400,
  SecurityGroupEthertypeConflictWithProtocol: 400,
  SecurityGroupRuleInvalidProtocol: 400,
  SecurityGroupRuleInvalidEtherType: 400,
  SecurityGroupRuleParameterConflict: 400,
  SecurityGroupRemoteGroupAndRemoteIpPrefix: 400,
  SecurityGroupProtocolRequiredWithPorts: 400,
  SecurityGroupRulesNotSingleTenant: 400,
  SecurityGroupNotSingleGroupRules: 400,
  PortSecurityAndIPRequiredForSecurityGroups: 400,
  AllowedAddressPairsMissingIP: 400,
  DuplicateAddressPairInRequest: 400,
  AllowedAddressPairExhausted: 400,
  InvalidRoutes: 400,
  RoutesExhausted: 400,
  SubnetMismatchForPort: 400,
  InvalidInput: 400,
  InvalidIpForSubnet: 400,
  InvalidIpForNetwork: 400,
  OutOfBoundsAllocationPool: 400,
  InvalidAllocationPool: 400,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  Conflict: 409,
  NetworkInUse: 409,
  SubnetInUse: 409,
  TunnelIdInUse: 409,
  FlatNetworkInUse: 409,
  VlanIdInUse: 409,
  IpAddressAlreadyAllocated: 409,
  IpAddressInUse: 409,
  IpAddressGenerationFailure: 409,
  MacAddressInUse: 409,
  OverlappingAllocationPools: 409,
  GatewayConflictWithAllocationPools: 409,
  GatewayIpInUse: 409,
  PortBound: 409,
  RouterInUse: 409,
  RouterInterfaceInUseByRoute: 409,
  PortInUse: 409,
  RouterInterfaceInUseByFloatingIP: 409,
  RouterExternalGatewayInUseByFloatingIp: 409,
  ExternalNetworkInUse: 409,
  FloatingIPPortAlreadyAssociated: 409,
  RouterHostedByL3Agent: 409,
  RouterNotHostedByL3Agent: 409,
  RouterReschedulingFailed: 409,
  L3PortInUse: 409,
  ServicePortInUse: 409,
  SecurityGroupRuleExists: 409,
  DuplicateSecurityGroupRuleInPost: 409,
  SecurityGroupInUse: 409,
  SecurityGroupCannotRemoveDefault: 409,
  SecurityGroupCannotUpdateDefault: 409,
  SecurityGroupDefaultAlreadyExists: 409,
  SecurityGroupRuleInUse: 409,
  PortSecurityPortHasSecurityGroup: 409,
  AddressPairAndPortSecurityRequired: 409,
  AddressPairMatchesPortFixedIPAndMac: 400,
  OverQuota: 409,
  QuotaExceeded: 403,
  RequestEntityTooLarge: 413,
  UnsupportedMediaType: 415,
  InternalError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
  NoNetworkAvailable: 503,
  MacAddressGenerationFailure: 503,
  HTTPBadRequest: 400,
  RequestTimeout: 408,
  RequestHeaderFieldsTooLarge: 431,
} as const;

export type ApiErrorType = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly type: ApiErrorType;
  readonly status: number;
  readonly detail: string;
  constructor(type: ApiErrorType, message: string, detail = '') {
    super(message);
    this.name = 'ApiError';
    this.type = type;
    this.status = API_ERRORS[type];
    this.detail = detail;
  }
}

export interface NeutronErrorBody {
  NeutronError: { type: string; message: string; detail: string };
}

export function neutronError(type: string, message: string, detail = ''): NeutronErrorBody {
  return { NeutronError: { type, message, detail } };
}

/** A failure worth retrying: the broker, the API or a daemon was briefly unavailable. */
export class TransientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientError';
  }
}

/** A failure that retrying cannot fix; the resource goes ERROR with this reason. */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }
}
