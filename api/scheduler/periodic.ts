/**
 * The schedulers' periodic sweeps (DHCP, L3): one pass every interval until stopped.
 *
 * Invariant: never two passes of one sweep at once (a slow pass makes the next tick a
 * no-op), a failed pass is logged and the next tick tries again, and stop() returns only
 * once the pass under way has ended, so nothing writes after the API has shut down.
 */
import type { Logger } from '../../core/log.ts';

export interface Sweeper {
  stop(): Promise<void>;
}

/** Runs `pass` every `intervalMs` (see the module invariant); `what` names it in logs. */
export function startSweeper(
  pass: () => Promise<unknown>,
  intervalMs: number,
  log: Logger,
  what: string,
): Sweeper {
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = pass()
      .catch((e: Error) => log.error({ err: e.message }, `${what} failed`))
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
