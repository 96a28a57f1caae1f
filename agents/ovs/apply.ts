/**
 * The ovs agent's executor: runs an OvsPlan against the host — the OVSDB transaction,
 * then (once ovs-vswitchd has caught up) one atomic replace-flows per bridge.
 *
 * Invariant: steps run in order and the first failure stops the apply with a typed error
 * (OvsdbError from the transaction, CommandError from ovs-ofctl); flows are written only
 * after ovs-vswitchd reports cur_cfg ≥ the transaction's next_cfg, so every port a flow
 * names exists in the datapath.
 */
import { TransientError } from '../../contracts/errors.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { replaceFlowsCommand } from '../../host/ovs/ofctl.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { select } from '../../host/ovs/ovsdb-types.ts';
import type { OvsPlan } from './plan.ts';

export interface ApplyDeps {
  ovsdb: OvsdbClient;
  runner: CommandRunner;
  rundir: string;
  /** Resolves once the monitored cur_cfg reaches `cfg`. */
  waitCfg(cfg: number, timeoutMs: number): Promise<void>;
}

export async function applyPlan(deps: ApplyDeps, plan: OvsPlan): Promise<void> {
  if (plan.ops.length > 0) {
    const results = await deps.ovsdb.transact('Open_vSwitch', [
      ...plan.ops,
      select('Open_vSwitch', [], ['next_cfg']),
    ]);
    const row = results[plan.ops.length]?.rows?.[0];
    const nextCfg = Number(row?.next_cfg);
    if (!Number.isFinite(nextCfg))
      throw new TransientError('OVSDB transaction returned no next_cfg');
    await deps.waitCfg(nextCfg, 10_000);
  }
  for (const step of plan.flowSteps) {
    await deps.runner.run(replaceFlowsCommand(deps.rundir, step.bridge, step.flows));
  }
}
