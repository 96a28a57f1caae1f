/**
 * The instance metadata contract shared by kumo-api's metadata listener, the relays in the
 * L3 and DHCP agents, and the compute agent's config drive: the well-known address, the
 * headers a proxy adds, how the relay signs an instance id (Nova's
 * X-Instance-ID-Signature: HMAC-SHA256 of the id under the shared secret, hex), and the
 * two RPC calls (which instance asked, the config drive's files).
 *
 * Invariants: a guest's own copies of the headers named here are stripped before the
 * request reaches the relay and never trusted; the listener answers only a request whose
 * signature matches (compared in constant time); an IP reaches the API only as a canonical
 * address (contracts/inet.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ipAddress } from './floatingip.ts';
import {
  arr,
  hostname,
  type Infer,
  nullable,
  obj,
  optional,
  projectId,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';
import { STRICT_B64 } from './server-fields.ts';

export const METADATA_IP = '169.254.169.254';
export const METADATA_CIDR = `${METADATA_IP}/32`;
/** Where a qrouter namespace's proxy listens (redirected from METADATA_IP:80), as Neutron. */
export const ROUTER_PROXY_PORT = 9697;
/** Nova's default metadata listener port. */
export const METADATA_PORT = 8775;

/** Header names, lower-case as node:http gives them. */
export const META_HEADERS = {
  routerId: 'x-kumo-router-id',
  networkId: 'x-kumo-network-id',
  forwardedFor: 'x-forwarded-for',
  instanceId: 'x-instance-id',
  tenantId: 'x-tenant-id',
  signature: 'x-instance-id-signature',
} as const;

/** Nova's signature of an instance id: HMAC-SHA256 under the shared secret, in hex. */
export function signInstanceId(secret: string, instanceId: string): string {
  return createHmac('sha256', secret).update(instanceId).digest('hex');
}

/** Whether `signature` is the id's signature under `secret` (constant time). */
export function signatureMatches(secret: string, instanceId: string, signature: string): boolean {
  const want = Buffer.from(signInstanceId(secret, instanceId));
  const got = Buffer.from(signature);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Which instance asked: the port with fixed IP `ip` on one of the router's networks
 * (router_id) or on the network (network_id); exactly one of the two is given.
 */
const MetadataInstanceQuery = obj({
  host: hostname(),
  router_id: optional(uuid()),
  network_id: optional(uuid()),
  ip: ipAddress(),
});
export const GetMetadataInstanceArgs: Schema<Infer<typeof MetadataInstanceQuery>> = {
  kind: 'object',
  parse(value, path = '') {
    const args = MetadataInstanceQuery.parse(value, path);
    if ((args.router_id === undefined) === (args.network_id === undefined))
      throw new ValidationError(path, 'must name exactly one of router_id and network_id');
    return args;
  },
};
export const MetadataInstance = obj({ instance_id: uuid(), project_id: projectId() });
export const GetMetadataInstanceResult = obj({ instance: nullable(MetadataInstance) });
export type MetadataInstance = Infer<typeof MetadataInstance>;

/** A config drive path: `openstack/…` or `ec2/…` in a safe alphabet (no blanks, quotes or
 * control characters); `.`/`..` segments pass here and are refused by the compute agent
 * (agents/compute/config-drive.ts), which reports them as the spawn's error. */
export const CONFIG_DRIVE_PATH = /^(openstack|ec2)(\/[A-Za-z0-9_.-]+)+$/;

/** The config drive of an instance this host runs (null: not this host's, or none). */
export const GetConfigDriveArgs = obj({ host: hostname(), instance_id: uuid() });
export const ConfigDriveFile = obj({
  path: str({ max: 255, pattern: CONFIG_DRIVE_PATH, patternName: 'a config drive path' }),
  content_base64: str({ max: 4 * 1024 * 1024, pattern: STRICT_B64, patternName: 'base64' }),
});
export const GetConfigDriveResult = obj({
  files: nullable(arr(ConfigDriveFile, { max: 4096 })),
});
export type ConfigDriveFile = Infer<typeof ConfigDriveFile>;
