/**
 * Opens a project's `default` security group to all IPv4 ingress, as an operator's first
 * `openstack security group rule create` would: for the lab suites whose subject is not
 * the firewall (routing, NAT, DHCP, compute) but whose peers are not group members (the
 * outside world, a DHCP namespace).
 *
 * Invariant: idempotent (an existing equal rule is Neutron's 409 and counts as done), and
 * it goes through the API like any client, so the firewall really enforces the rule.
 */
import assert from 'node:assert/strict';

interface HttpClient {
  http(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

/** The id of `projectId`'s default group (made on first use by the list). */
export async function defaultGroupId(c: HttpClient, projectId: string): Promise<string> {
  const res = await c.http(
    'GET',
    `/v2.0/security-groups?name=default&project_id=${encodeURIComponent(projectId)}`,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const groups = (res.body as { security_groups: { id: string; project_id: string }[] })
    .security_groups;
  const own = groups.find((g) => g.project_id === projectId);
  assert.ok(own, `no default security group for project ${projectId}`);
  return own.id;
}

/** Adds `ingress IPv4 any protocol from anywhere` to `projectId`'s default group. */
export async function openDefaultGroup(c: HttpClient, projectId: string): Promise<string> {
  const id = await defaultGroupId(c, projectId);
  const res = await c.http('POST', '/v2.0/security-group-rules', {
    security_group_rule: {
      security_group_id: id,
      direction: 'ingress',
      ethertype: 'IPv4',
      remote_ip_prefix: '0.0.0.0/0',
    },
  });
  assert.ok(res.status === 201 || res.status === 409, JSON.stringify(res.body));
  return id;
}
