/**
 * Keystone v3 authentication routes (owned by the identity-auth work of issue 12).
 */
import type { FastifyInstance } from 'fastify';
import type { IdentityDeps } from './deps.ts';

export function authRoutes(_app: FastifyInstance, _deps: IdentityDeps) {}
