/**
 * The shared `main` of the six agent daemons: config, logger, command runner, metrics,
 * broker, then the common lifecycle (core/agent.ts) with the agent type's own hooks.
 *
 * Invariants: an agent's hooks get everything through their arguments; the only thing
 * that differs between agent daemons is `makeHooks`. The daemon's metrics live in one
 * registry made here and handed down (broker, lifecycle, hooks); its listener, when
 * [DEFAULT] metrics_port is set, is bound before anything else starts (a taken port stops
 * the daemon) and closed after the agent stopped.
 */
import type { AgentKind } from '../contracts/agents.ts';
import { type AgentHooks, createAgent } from '../core/agent.ts';
import { type Broker, createBroker } from '../core/amqp.ts';
import type { KumoConfig } from '../core/config.ts';
import { runDaemon } from '../core/daemon.ts';
import { type CommandRunner, createCommandRunner } from '../core/exec.ts';
import type { Logger } from '../core/log.ts';
import {
  type AgentDaemonMetrics,
  createAgentMetrics,
  type MetricsBinary,
  startMetrics,
} from '../core/metrics.ts';

export interface HookDeps {
  config: KumoConfig;
  runner: CommandRunner;
  log: Logger;
  /** For RPC calls to kumo-api; it is connected by the time `start` runs. */
  broker: Broker;
  /** The daemon's metrics (steps, host links); nothing is counted when absent (tests). */
  metrics?: AgentDaemonMetrics;
}

export type MakeHooks = (deps: HookDeps) => Promise<AgentHooks>;

export function runAgentDaemon(
  kind: AgentKind,
  binary: MetricsBinary,
  makeHooks: MakeHooks,
): Promise<void> {
  return runDaemon(binary, async ({ config, log }) => {
    // metrics_port = 0: nothing is counted at all, so "off" costs nothing.
    const metrics = config.DEFAULT.metrics_port > 0 ? createAgentMetrics() : undefined;
    const listener = metrics && (await startMetrics(config, binary, metrics.registry, log));
    const runner = createCommandRunner();
    const broker = createBroker({
      url: config.DEFAULT.transport_url,
      log,
      timeoutMs: config.DEFAULT.rpc_response_timeout * 1000,
      ...(metrics ? { metrics: metrics.amqp } : {}),
    });
    const hooks = await makeHooks({ config, runner, log, broker, ...(metrics ? { metrics } : {}) });
    const agent = createAgent({
      kind,
      config,
      broker,
      log,
      hooks,
      ...(metrics ? { metrics: metrics.reconcile } : {}),
    });
    await agent.start();
    return {
      async stop() {
        await agent.stop();
        await listener?.close();
      },
    };
  });
}

/** Until an agent type manages resources (later issues) its resync has nothing to do. */
export const nothingHosted = async () => {};
