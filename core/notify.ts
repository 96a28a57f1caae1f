/**
 * sd_notify for Kumo's daemons (systemd units with Type=notify, NotifyAccess=all).
 *
 * Node cannot send AF_UNIX datagrams, so every message goes through the `systemd-notify`
 * binary, spawned through the CommandRunner (argv only, never a shell).
 *
 * What systemd-notify 252 (Debian 12) does, measured with a recvmsg() receiver:
 * - Without --no-block it sends the message, then `BARRIER=1` carrying one end of a pipe
 *   as SCM_RIGHTS, and waits until the receiver closes that fd (up to 5 s; on timeout it
 *   sends `ERRNO=110` and exits 1 with "Failed to invoke barrier"). systemd closes the fd
 *   only after processing every earlier datagram, so the barrier keeps the sender alive
 *   until the manager has attributed the message to our unit. We therefore never pass
 *   --no-block: without the barrier the short-lived sender may be gone before systemd
 *   looks up its cgroup, and the message is dropped ("Cannot find unit for notify message").
 * - Run as root it stamps the message's SCM_CREDENTIALS pid with its parent's pid (our
 *   daemon); as a non-root user (kumo-api) the kernel stamps its own pid instead. Either
 *   way the sender lives in the unit's cgroup, hence NotifyAccess=all in the units.
 * - We never pass --pid: it adds MAINPID=, which would make systemd-notify the main PID.
 * - NOTIFY_SOCKET reaches systemd-notify via `env NOTIFY_SOCKET=… systemd-notify …` (the
 *   CommandRunner has no env option), so it works from an injected env and after
 *   `unsetEnv` removed the variables from process.env.
 *
 * Invariant: notifying never throws and never blocks the caller's correctness: failures
 * are logged at warn. Messages are sent one at a time, in call order. Values are stripped
 * of control characters, so a status text can't inject another assignment.
 */
import type { CommandRunner } from './exec.ts';
import type { Logger } from './log.ts';

export interface Notifier {
  /** False when NOTIFY_SOCKET is unset: every method is then a no-op. */
  enabled: boolean;
  ready(status?: string): Promise<void>;
  status(text: string): Promise<void>;
  stopping(): Promise<void>;
  watchdog(): Promise<void>;
  /** Starts WATCHDOG=1 pings every WATCHDOG_USEC/2 if set; returns a stop function. */
  startWatchdog(): () => void;
}

/** systemd-notify waits up to 5 s on the barrier; leave it room to report that itself. */
const SEND_TIMEOUT_MS = 10_000;
const MAX_STATUS_CHARS = 512;

/** Replace control characters (C0, DEL, C1, line/paragraph separators) and cap length. */
export function sanitizeNotifyValue(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  return clean.length > MAX_STATUS_CHARS ? clean.slice(0, MAX_STATUS_CHARS) : clean;
}

/** WATCHDOG_USEC in microseconds if the watchdog is enabled for this process, else null. */
export function watchdogUsec(env: NodeJS.ProcessEnv, pid = process.pid): number | null {
  const raw = env.WATCHDOG_USEC;
  if (raw === undefined || !/^[0-9]+$/.test(raw)) return null;
  const usec = Number(raw);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== '' && forPid !== String(pid)) return null;
  return usec;
}

export function createNotifier(opts: {
  runner: CommandRunner;
  env?: NodeJS.ProcessEnv;
  log: Logger;
  /**
   * Delete NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from `env` (default process.env)
   * after reading them, like sd_notify's unset_environment, so children we spawn (dnsmasq,
   * haproxy, qemu…) don't inherit them: with NotifyAccess=all any process in the unit's
   * cgroup may otherwise notify on our behalf.
   */
  unsetEnv?: boolean;
}): Notifier {
  const env = opts.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const enabled = socket !== undefined && socket !== '';
  const wdUsec = enabled ? watchdogUsec(env) : null;
  if (opts.unsetEnv) {
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
  }
  const log = opts.log;
  let queue: Promise<void> = Promise.resolve();

  const send = (assignments: string[]): Promise<void> => {
    if (!enabled) return Promise.resolve();
    const run = async () => {
      try {
        await opts.runner.run({
          // CommandSpec has no env: `env` sets NOTIFY_SOCKET and execs systemd-notify in
          // the same process, so its parent (whose pid it reports when root) stays us.
          argv: ['env', `NOTIFY_SOCKET=${socket}`, 'systemd-notify', ...assignments],
          timeoutMs: SEND_TIMEOUT_MS,
        });
      } catch (err) {
        log.warn({ err, notify: assignments }, 'sd_notify failed');
      }
    };
    queue = queue.then(run);
    return queue;
  };

  const statusArg = (text: string) => `STATUS=${sanitizeNotifyValue(text)}`;

  let pinging = false;
  const watchdog = async () => {
    if (!enabled || pinging) return; // a ping still waiting on its barrier counts
    pinging = true;
    try {
      await send(['WATCHDOG=1']);
    } finally {
      pinging = false;
    }
  };

  return {
    enabled,
    ready: (status) => send(status === undefined ? ['READY=1'] : ['READY=1', statusArg(status)]),
    status: (text) => send([statusArg(text)]),
    stopping: () => send(['STOPPING=1']),
    watchdog,
    startWatchdog() {
      const usec = wdUsec;
      if (usec === null) return () => {};
      const intervalMs = Math.max(1, Math.floor(usec / 2000));
      log.debug({ intervalMs }, 'systemd watchdog pings started');
      void watchdog();
      const timer = setInterval(() => void watchdog(), intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
