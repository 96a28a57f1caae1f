/** Neutron LBaaS v1 routes (/v2.0/lb/...): filled in by the LBaaS API work of issue 16. */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';

export function lbaasRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
