/**
 * What the agents that serve one namespace per resource (dhcp: `network`, l3: `router`)
 * share around their reconciler: the resource's status report and the resync.
 *
 * Invariants:
 * - a resource's status is ACTIVE once reconciled (served, or torn down), listing the
 *   parts it is served without (`rejected`, logged when that list changes), and ERROR with
 *   the reason after a failure;
 * - a resync reconciles the union of what the API lists for this host and what this agent
 *   has state for (its own, by the caller's ownership rule), so what nothing claims any
 *   more is torn down, also after revival when the resource moved elsewhere; statuses of
 *   resources outside that union are dropped (not sent again), and every applied revision
 *   is forgotten so each resource is observed afresh.
 */
import type { RejectedPart, ResourceKind, ResourceStatus } from '../../contracts/status.ts';
import type { Logger } from '../../core/log.ts';
import type { KindStatus } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import { resourceStatus } from './status.ts';

type WithRejected = { rejected: readonly RejectedPart[] } | null;

/** Parts left out are logged when they change (the status report carries them too). */
function logRejected(
  log: Logger,
  idKey: string,
  sent: ResourceStatus | undefined,
  now: ResourceStatus,
) {
  if (JSON.stringify(sent?.rejected ?? []) === JSON.stringify(now.rejected ?? [])) return;
  if (now.rejected?.length)
    log.warn({ [idKey]: now.id, rejected: now.rejected }, 'served without these parts');
  else log.info({ [idKey]: now.id }, 'every part served again');
}

/** The status of a served resource (see the module comment); `onServed` counts it. */
export function servedStatus<F, D extends WithRejected>(
  reporter: StatusReporter<ResourceStatus>,
  log: Logger,
  resource: ResourceKind,
  onServed: (id: string, fetched: F, desired: D) => void,
): KindStatus<F, D, ResourceStatus> {
  return {
    reporter,
    ok(fetched, desired, id) {
      onServed(id, fetched, desired);
      const rejected = desired?.rejected.length ? { rejected: [...desired.rejected] } : {};
      const status = { ...resourceStatus(resource, id), ...rejected };
      logRejected(log, `${resource}Id`, reporter.sent(`${resource}:${id}`), status);
      return status;
    },
    failed: (err, id) => resourceStatus(resource, id, err),
  };
}

/** A resync of `resource`s: the API's list for this host and the agent's own state. */
export function resyncServed(o: {
  resource: ResourceKind;
  active: readonly string[];
  owned: ReadonlySet<string>;
  reporter: StatusReporter<ResourceStatus>;
  reconciler: { forget(): void };
  enqueue(resource: string, id: string): void;
}): void {
  const claimed = new Set([...o.active, ...o.owned]);
  const prefix = `${o.resource}:`;
  for (const key of o.reporter.sentKeys())
    if (key.startsWith(prefix) && !claimed.has(key.slice(prefix.length))) o.reporter.drop(key);
  o.reconciler.forget();
  for (const id of claimed) o.enqueue(o.resource, id);
}
