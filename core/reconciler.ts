/**
 * The reconciler every agent is built from: for each resource kind it manages, one
 * reconcile is fetch (ask the API) → desired (pure) → observe (read-only) → plan (pure)
 * → apply → report.
 *
 * Invariants:
 * - the host is only changed by `apply`, with the steps `plan` returned; the steps'
 *   `why` are logged with the resource, so every change says what it was for;
 * - a hint whose revision is not newer than the one last applied for the resource is
 *   skipped (the work was done); a reconcile without a revision (resync, host event,
 *   retry) always runs;
 * - TransientError (the broker, the API or a daemon briefly away) is rethrown for the
 *   reconcile queue to retry with backoff, and changes no status;
 * - PermanentError reports the resource's failure status (ERROR with the reason, which
 *   the API shows) and is not retried until the next hint or resync;
 * - any other error (a CommandError …) reports the failure status too and is rethrown,
 *   so the queue retries it with backoff and a recovered resource reports ACTIVE again.
 */
import { PermanentError, TransientError } from '../contracts/errors.ts';
import type { Logger } from './log.ts';
import type { StatusReporter } from './status.ts';

/** What every planned step carries: the reason it is needed, for the log. */
export interface PlannedStep {
  why: string;
}

export interface KindStatus<F, D, V> {
  reporter: StatusReporter<V>;
  /** The status once applied; undefined: report nothing and forget the resource. */
  ok(fetched: F, desired: D, id: string): V | undefined;
  /** The status after a failure; undefined: report nothing. */
  failed(error: Error, id: string): V | undefined;
  /** The reporter key of a resource (default `<kind>:<id>`). */
  key?(id: string): string;
}

export interface ResourceKindSpec<F, D, O, S extends PlannedStep, V = unknown> {
  fetch(id: string): Promise<F>;
  desired(fetched: F, id: string): D;
  observe(id: string, desired: D): Promise<O>;
  plan(desired: D, observed: O, id: string): readonly S[];
  apply(steps: readonly S[], id: string): Promise<void>;
  /** The revision of what was fetched, compared with hints' revisions. */
  revisionOf?(fetched: F): number | undefined;
  status?: KindStatus<F, D, V>;
}

// biome-ignore lint/suspicious/noExplicitAny: each kind has its own types; the table erases them
export type AnyKindSpec = ResourceKindSpec<any, any, any, PlannedStep, any>;

export interface Reconciler {
  /** One reconcile of `<kind>:<id>`; `revision` comes from the hint, if any. */
  reconcile(kind: string, id: string, revision?: number): Promise<void>;
  /** On resync: forget applied revisions (everything is checked again). */
  forget(): void;
}

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export function createReconciler(opts: {
  log: Logger;
  kinds: Record<string, AnyKindSpec>;
  /** Maps a failure to TransientError / PermanentError where its class says so. */
  classify?: (e: unknown) => Error;
}): Reconciler {
  const classify = opts.classify ?? asError;
  const applied = new Map<string, number>();

  const report = async (spec: AnyKindSpec, kind: string, id: string, value: unknown) => {
    const status = spec.status;
    if (!status) return;
    const key = status.key?.(id) ?? `${kind}:${id}`;
    if (value === undefined) status.reporter.drop(key);
    else status.reporter.set(key, value);
    await status.reporter.flush();
  };

  const run = async (spec: AnyKindSpec, kind: string, id: string) => {
    const fetched = await spec.fetch(id);
    const desired = spec.desired(fetched, id);
    const observed = await spec.observe(id, desired);
    const steps = spec.plan(desired, observed, id);
    if (steps.length)
      opts.log.info({ resource: kind, id, steps: steps.map((s) => s.why) }, 'apply');
    await spec.apply(steps, id);
    const revision = spec.revisionOf?.(fetched);
    if (revision !== undefined) applied.set(`${kind}:${id}`, revision);
    await report(spec, kind, id, spec.status?.ok(fetched, desired, id));
  };

  const fail = async (spec: AnyKindSpec, kind: string, id: string, err: Error) => {
    applied.delete(`${kind}:${id}`);
    try {
      await report(spec, kind, id, spec.status?.failed(err, id));
    } catch (e) {
      opts.log.warn({ resource: kind, id, err: asError(e).message }, 'failure not reported');
    }
    if (!(err instanceof PermanentError)) throw err;
    opts.log.error({ resource: kind, id, err: err.message }, 'permanent failure');
  };

  return {
    async reconcile(kind, id, revision) {
      const spec = opts.kinds[kind];
      if (!spec) throw new PermanentError(`this agent does not manage ${kind} resources`);
      const done = applied.get(`${kind}:${id}`);
      if (revision !== undefined && done !== undefined && revision <= done) {
        opts.log.debug({ resource: kind, id, revision, done }, 'hint already applied');
        return;
      }
      try {
        await run(spec, kind, id);
      } catch (e) {
        const err = classify(e);
        if (err instanceof TransientError) throw err;
        await fail(spec, kind, id, err);
      }
    },
    forget() {
      applied.clear();
      for (const spec of Object.values(opts.kinds)) spec.status?.reporter.forget();
    },
  };
}
