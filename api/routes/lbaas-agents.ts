/** Neutron's LBaaS agent-scheduler routes: filled in by the scheduler work of issue 16. */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';

export function lbaasAgentRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
