/**
 * What every Kumo daemon does around its own work: read `--config-file`, compile the
 * config, create the root logger, tell systemd when it is ready, and stop cleanly on
 * SIGTERM/SIGINT.
 *
 * Invariant: a bad config, or one without a key this daemon requires (core/config.ts
 * REQUIRED_KEYS), stops the daemon before it touches anything, with one line that names
 * the key (exit 78, EX_CONFIG); a stop signal runs the daemon's own `stop` once and
 * exits 0 when it finished, 1 when it failed or outlived the grace period.
 */
import { parseArgs } from 'node:util';
import {
  ConfigError,
  checkRequired,
  DEFAULT_CONFIG_PATH,
  type KumoConfig,
  loadConfig,
} from './config.ts';
import { createCommandRunner } from './exec.ts';
import { createLogger, type Logger } from './log.ts';
import { createNotifier, type Notifier } from './notify.ts';

export interface DaemonContext {
  config: KumoConfig;
  log: Logger;
  notifier: Notifier;
}

export interface Running {
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 30_000;

export function configPathFromArgv(argv: string[]): string {
  const { values } = parseArgs({
    args: argv,
    options: { 'config-file': { type: 'string' } },
    strict: true,
  });
  return values['config-file'] ?? process.env.KUMO_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export async function runDaemon(
  name: string,
  start: (ctx: DaemonContext) => Promise<Running>,
): Promise<void> {
  let config: KumoConfig;
  try {
    config = loadConfig(configPathFromArgv(process.argv.slice(2)));
    checkRequired(config, name);
  } catch (e) {
    const msg = e instanceof ConfigError || e instanceof TypeError ? e.message : String(e);
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(78);
  }
  const log = createLogger({ name, debug: config.DEFAULT.debug });
  // unsetEnv: children (dnsmasq, haproxy) must not inherit NOTIFY_SOCKET and speak for us.
  const notifier = createNotifier({
    runner: createCommandRunner({ defaultTimeoutMs: 5000 }),
    log,
    unsetEnv: true,
  });
  let running: Running;
  try {
    running = await start({ config, log, notifier });
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'start failed');
    process.exit(1);
  }
  const stopWatchdog = notifier.startWatchdog();
  await notifier.ready();
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    stopWatchdog();
    const grace = setTimeout(() => {
      log.error('stop took too long; exiting');
      process.exit(1);
    }, STOP_GRACE_MS);
    grace.unref();
    void notifier
      .stopping()
      .then(() => running.stop())
      .then(
        () => {
          log.info('stopped');
          process.exit(0);
        },
        (e: Error) => {
          log.error({ err: e.message }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
