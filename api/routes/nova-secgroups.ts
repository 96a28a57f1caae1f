/**
 * Nova's os-security-groups proxy (GET /os-security-groups, GET /servers/{id}/os-security-groups).
 * (Skeleton wired into app.ts; the port-security branch fills it in.)
 */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';

export function novaSecurityGroupRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
