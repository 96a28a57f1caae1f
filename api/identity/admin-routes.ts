/**
 * Keystone v3 admin routes (owned by the identity-admin work of issue 12).
 */
import type { FastifyInstance } from 'fastify';
import type { IdentityDeps } from './deps.ts';

export function adminRoutes(_app: FastifyInstance, _deps: IdentityDeps) {}
