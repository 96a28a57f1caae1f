/**
 * addSecurityGroup / removeSecurityGroup (nova/api/openstack/compute/security_groups.py,
 * network/security_group_api.py add_to_instance, remove_from_instance): 202, no body.
 * Until Kumo has security groups, `default` is the only one there is.
 *
 * Invariants: a name other than `default` is Nova's 404 "not found for project"; a server
 * without ports is Nova's 404 (the groups live on ports); adding a group the server has
 * changes nothing (Neutron keeps a port's groups a set); removing one it does not have is
 * Nova's 404 "not associated"; the instance's security_groups column follows.
 */
import { ApiError } from '../../contracts/errors.ts';
import { securityGroupName } from '../../contracts/server-actions.ts';
import { setSecurityGroups } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { instanceNotFound } from './server-action-rules.ts';

/** The groups that exist: Kumo's only one until the security-group issue. */
const KNOWN_SECURITY_GROUPS: readonly string[] = ['default'];

const notFound = (message: string) => new ApiError('NotFound', message);

function checkGroup(inst: InstanceRecord, name: string) {
  if (!KNOWN_SECURITY_GROUPS.includes(name))
    throw notFound(`Security group ${name} is not found for project ${inst.projectId}`);
  if (inst.portOrder.length === 0)
    throw notFound(`instance_id ${inst.id} could not be found as device id on any ports`);
}

export async function changeSecurityGroup(
  deps: AppDeps,
  inst: InstanceRecord,
  key: 'addSecurityGroup' | 'removeSecurityGroup',
  body: Record<string, unknown>,
) {
  const name = securityGroupName(key, body[key]);
  checkGroup(inst, name);
  const has = inst.securityGroups.includes(name);
  if (key === 'removeSecurityGroup' && !has)
    throw notFound(`Security group ${name} not associated with the instance ${inst.id}`);
  if (key === 'addSecurityGroup' && has) return;
  const groups =
    key === 'addSecurityGroup'
      ? [...inst.securityGroups, name]
      : inst.securityGroups.filter((g) => g !== name);
  if (!(await setSecurityGroups(deps.db, inst.id, groups, deps.clock.now())))
    throw instanceNotFound(inst.id);
  deps.log.info({ instanceId: inst.id, groups }, 'instance security groups changed');
}
