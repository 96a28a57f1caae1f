/** SKELETON: filled in by its helper. */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';

export function l3AgentRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
