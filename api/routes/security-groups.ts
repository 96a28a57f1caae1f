/**
 * Neutron v2.0 security groups and rules: /v2.0/security-groups, /v2.0/security-group-rules.
 * (Skeleton wired into app.ts; the security-groups branch fills it in.)
 */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';

export function securityGroupRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
