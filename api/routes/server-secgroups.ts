/**
 * addSecurityGroup / removeSecurityGroup (nova/api/openstack/compute/security_groups.py,
 * network/security_group_api.py add_to_instance, remove_from_instance): 202, no body.
 *
 * Invariants: the group is looked up by name (or id) in the server's project, else Nova's
 * 404 "not found for project"; a server without ports is Nova's 404 (the groups live on
 * ports); adding needs port security on every port (Nova's 400
 * SecurityGroupCannotBeApplied) and changes every port (Neutron keeps a port's groups a
 * set); removing one no port has is Nova's 404 "not associated". Every port changes in one
 * transaction; the instance's security_groups column (the groups' names) follows; the L2
 * agents and the
 * group's remote-group users are hinted.
 */
import { ApiError } from '../../contracts/errors.ts';
import { securityGroupName } from '../../contracts/server-actions.ts';
import { changePortsGroup, findProjectGroup, serverPorts } from '../db/nova-secgroups.ts';
import { setSecurityGroups } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { hintL2Port } from '../hints.ts';
import { sgMembersChanged } from '../sg-hints.ts';
import { instanceNotFound } from './server-action-rules.ts';

const notFound = (message: string) => new ApiError('NotFound', message);

/** The group's id and the server's ports, or Nova's 404 for either. */
async function groupAndPorts(deps: AppDeps, inst: InstanceRecord, name: string) {
  const group = await deps.db.transaction((tx) =>
    findProjectGroup(tx, inst.projectId, name, deps.clock.now()),
  );
  if (group === undefined)
    throw notFound(`Security group ${name} is not found for project ${inst.projectId}`);
  const ports = await serverPorts(deps.db, inst.id);
  if (ports.length === 0)
    throw notFound(`instance_id ${inst.id} could not be found as device id on any ports`);
  return { groupId: group.id, groupName: group.name, ports };
}

/** The ports the action changes (Nova's checks on the way). */
function portsToChange(
  inst: InstanceRecord,
  name: string,
  add: boolean,
  groupId: string,
  ports: Awaited<ReturnType<typeof serverPorts>>,
) {
  if (add && ports.some((p) => !p.portSecurity))
    throw new ApiError(
      'BadRequest',
      'Network requires port_security_enabled and subnet associated in order to apply security groups.',
    );
  const changed = ports.filter((p) => p.groups.includes(groupId) !== add).map((p) => p.id);
  if (!add && changed.length === 0)
    throw notFound(`Security group ${name} not associated with the instance ${inst.id}`);
  return changed;
}

export async function changeSecurityGroup(
  deps: AppDeps,
  inst: InstanceRecord,
  key: 'addSecurityGroup' | 'removeSecurityGroup',
  body: Record<string, unknown>,
) {
  const name = securityGroupName(key, body[key]);
  const add = key === 'addSecurityGroup';
  const { groupId, groupName, ports } = await groupAndPorts(deps, inst, name);
  const changed = portsToChange(inst, name, add, groupId, ports);
  if (changed.length) await changePortsGroup(deps.db, changed, groupId, add);
  const groups = add
    ? [...new Set([...inst.securityGroups, groupName])]
    : inst.securityGroups.filter((g) => g !== groupName && g !== groupId);
  if (!(await setSecurityGroups(deps.db, inst.id, groups, deps.clock.now())))
    throw instanceNotFound(inst.id);
  for (const portId of changed) void hintL2Port(deps, portId);
  if (changed.length) void sgMembersChanged(deps, [groupId]);
  deps.log.info({ instanceId: inst.id, groupId, groups }, 'instance security groups changed');
}
