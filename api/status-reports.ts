/**
 * The `report_status` consumer (q-plugin): what an agent could not serve, as it reports
 * it (contracts/status.ts), kept in agent_resource_status and shown in the agent body —
 * whole resources (`failed_networks`) and the parts a resource is served without
 * (`failed_ports`, `failed_subnets` of a DHCP agent).
 *
 * Invariants: the reports of one agent are applied in the order this process received
 * them (q-plugin's deliveries are handled concurrently, and a report carries changes
 * only, so an ERROR overtaking the ACTIVE that followed it would stick); a report is
 * stored under the agent's identity (agent_type, host) even when it is consumed before
 * the agent's first report_state, which travels on another queue: nothing is dropped.
 * The order holds within one kumo-api process: with several replicas (or a report
 * requeued after a transient failure) an ERROR applied after its ACTIVE stays until the
 * agent's next resync sends its statuses again (every resync_interval). A pool's status
 * from the LBaaS agent is the one exception to that storage: it is applied to the pool's
 * own rows, only from the hosting host and by the revision it served, so a late report
 * (another replica, a requeue) undoes nothing newer (api/db/lbaas-status.ts). Volumes and
 * snapshots from the Volume agent and attachments from the Compute agent are the others:
 * applied to the volume rows by revision, only from their own hosts
 * (api/db/volume-status.ts, attachment-status.ts), and the agents those changes concern
 * are hinted once they are committed.
 */
import type { ReportStatusArgs, ResourceStatus } from '../contracts/status.ts';
import type { Logger } from '../core/log.ts';
import { applyStatuses } from './db/agent-status.ts';
import type { Db } from './db/index.ts';
import { LBAAS_AGENT_TYPE } from './db/lbaas-bindings.ts';
import { applyPoolStatuses } from './db/lbaas-status.ts';
import type { HintDeps } from './hints.ts';
import { type Clock, systemClock } from './liveness.ts';
import { applyVolumeReport, isVolumeReport } from './volume-reports.ts';

export interface StatusDeps extends HintDeps {
  db: Db;
  log: Logger;
  /** The system clock when absent. */
  clock?: Clock;
}

function logReport(deps: StatusDeps, args: ReportStatusArgs) {
  const ctx = { host: args.host, agentType: args.agent_type };
  const failed = (s: ResourceStatus) => s.status === 'ERROR';
  for (const s of args.statuses.filter(failed))
    deps.log.warn({ ...ctx, [`${s.resource}Id`]: s.id, reason: s.reason }, `${s.resource} failed`);
  for (const s of args.statuses.filter((x) => x.rejected?.length))
    deps.log.warn(
      { ...ctx, [`${s.resource}Id`]: s.id, rejected: s.rejected },
      `${s.resource} served without some parts`,
    );
  const cleared = args.statuses.filter((s) => !failed(s)).length;
  if (cleared) deps.log.info({ ...ctx, cleared }, 'resources served again');
}

/** A pool's status from its LBaaS agent: applied to the lb_* rows (api/db/lbaas-status.ts). */
const isLbPool = (args: ReportStatusArgs) => (s: ResourceStatus) =>
  args.agent_type === LBAAS_AGENT_TYPE && s.resource === 'pool';

async function applyReport(deps: StatusDeps, args: ReportStatusArgs): Promise<void> {
  const pools = args.statuses.filter(isLbPool(args));
  const volumes = args.statuses.filter(isVolumeReport(args));
  const others = args.statuses.filter((s) => !isLbPool(args)(s) && !isVolumeReport(args)(s));
  if (volumes.length) await applyVolumeReport(deps, args, volumes);
  if (others.length) await applyStatuses(deps.db, args, others, (deps.clock ?? systemClock).now());
  const ignored = pools.length ? await applyPoolStatuses(deps.db, args.host, pools) : [];
  if (ignored.length)
    deps.log.info(
      { host: args.host, pools: ignored },
      'pool statuses of a host not hosting them ignored',
    );
  logReport(deps, args);
}

/** The handler for `report_status`; resolves once the report is stored (or dropped). */
export function createStatusHandler(deps: StatusDeps) {
  const chains = new Map<string, Promise<void>>();
  return (args: ReportStatusArgs): Promise<void> => {
    const key = `${args.agent_type}\n${args.host}`;
    const run = (chains.get(key) ?? Promise.resolve()).then(() => applyReport(deps, args));
    const settled = run.catch(() => {});
    chains.set(key, settled);
    void settled.then(() => {
      if (chains.get(key) === settled) chains.delete(key);
    });
    return run;
  };
}
