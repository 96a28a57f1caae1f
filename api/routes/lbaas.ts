/**
 * Neutron LBaaS v1 routes (/v2.0/lb/...): pools (with their stats and monitor
 * associations), members, VIPs and health monitors, each in its own module.
 *
 * Invariant: this registrar adds no route of its own; app.ts wires it once.
 */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';
import { lbMemberRoutes } from './lb-members.ts';
import { lbMonitorRoutes } from './lb-monitors.ts';
import { lbPoolRoutes } from './lb-pools.ts';
import { lbVipRoutes } from './lb-vips.ts';

export function lbaasRoutes(app: FastifyInstance, deps: AppDeps): void {
  lbPoolRoutes(app, deps);
  lbMemberRoutes(app, deps);
  lbVipRoutes(app, deps);
  lbMonitorRoutes(app, deps);
}
