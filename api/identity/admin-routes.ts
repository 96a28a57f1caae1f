/**
 * Keystone v3's admin API on the identity listener: domains, projects, users, roles and
 * role assignments (one module each, admin-*.ts), as `openstack project|user|role|role
 * assignment|domain ...` drive it.
 *
 * Invariant: every route checks Keystone's policy (admin-common.ts `authorize`) before it
 * touches the database, and every change that must end tokens records its revocation
 * events in its own transaction.
 */
import type { FastifyInstance } from 'fastify';
import { assignmentRoutes } from './admin-assignments.ts';
import { domainRoutes } from './admin-domains.ts';
import { projectRoutes } from './admin-projects.ts';
import { roleRoutes } from './admin-roles.ts';
import { userRoutes } from './admin-users.ts';
import type { IdentityDeps } from './deps.ts';

export function adminRoutes(app: FastifyInstance, deps: IdentityDeps) {
  domainRoutes(app, deps);
  projectRoutes(app, deps);
  userRoutes(app, deps);
  roleRoutes(app, deps);
  assignmentRoutes(app, deps);
}
