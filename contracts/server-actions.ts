/**
 * The bodies of Nova v2.1's server actions beyond the power ones: rebuild, lock/unlock,
 * addSecurityGroup/removeSecurityGroup (nova/api/openstack/compute/schemas/servers.py,
 * lock_server.py, security_groups.py at microversions 2.1 .. 2.16).
 *
 * Invariant: every field Nova's 2.1 schema names is parsed here with Nova's type, and
 * nothing else is accepted; what reaches the database or an agent (a name, an address,
 * metadata, a password) passed one of these schemas first.
 */
import { ApiError } from './errors.ts';
import {
  arr,
  type Infer,
  isPlainObject,
  obj,
  oneOf,
  optional,
  type Schema,
  str,
} from './schema.ts';
import { accessIp, adminPass, novaBool } from './server-fields.ts';
import { Metadata, novaName, ref } from './servers.ts';

const anyValue = { kind: 'any', parse: (v: unknown) => v } as Schema<unknown>;

/** personality (before 2.57): accepted as Nova does, not applied (no file injection). */
const Personality = arr(
  obj({ path: optional(str({ max: 255 })), contents: optional(str({ max: 65535 })) }),
  { max: 5 },
);

export const RebuildAction = obj({
  rebuild: obj({
    imageRef: ref(),
    name: optional(novaName()),
    adminPass: optional(adminPass()),
    metadata: optional(Metadata),
    preserve_ephemeral: optional(novaBool()),
    'OS-DCF:diskConfig': optional(oneOf(['AUTO', 'MANUAL'] as const)),
    accessIPv4: optional(accessIp(4)),
    accessIPv6: optional(accessIp(6)),
    personality: optional(Personality),
  }),
});
export type RebuildAction = Infer<typeof RebuildAction>['rebuild'];

/** lock / unlock at 2.1 .. 2.72: the value is not looked at (Nova's schema: `{}`). */
export const LockAction = obj({ lock: anyValue });
export const UnlockAction = obj({ unlock: anyValue });

/** addSecurityGroup / removeSecurityGroup: `{"name": <group>}`, with Nova's 400s. */
export function securityGroupName(key: string, value: unknown): string {
  const bad = (message: string) => new ApiError('BadRequest', message);
  if (!isPlainObject(value)) throw bad('Missing parameter dict');
  if (!Object.hasOwn(value, 'name')) throw bad('Security group not specified');
  const name = value.name;
  if (typeof name !== 'string' || name.trim() === '')
    throw bad('Security group name cannot be empty');
  return str({ min: 1, max: 255 }).parse(name, `${key}.name`);
}
