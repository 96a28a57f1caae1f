/**
 * The shared `main` of the six agent daemons: config, logger, command runner, broker,
 * then the common lifecycle (core/agent.ts) with the agent type's own hooks.
 *
 * Invariant: an agent's hooks get everything through their arguments; the only thing
 * that differs between agent daemons is `makeHooks`.
 */
import type { AgentKind } from '../contracts/agents.ts';
import { type AgentHooks, createAgent } from '../core/agent.ts';
import { type Broker, createBroker } from '../core/amqp.ts';
import type { KumoConfig } from '../core/config.ts';
import { runDaemon } from '../core/daemon.ts';
import { type CommandRunner, createCommandRunner } from '../core/exec.ts';
import type { Logger } from '../core/log.ts';

export interface HookDeps {
  config: KumoConfig;
  runner: CommandRunner;
  log: Logger;
  /** For RPC calls to kumo-api; it is connected by the time `start` runs. */
  broker: Broker;
}

export type MakeHooks = (deps: HookDeps) => Promise<AgentHooks>;

export function runAgentDaemon(
  kind: AgentKind,
  binary: string,
  makeHooks: MakeHooks,
): Promise<void> {
  return runDaemon(binary, async ({ config, log }) => {
    const runner = createCommandRunner();
    const broker = createBroker({
      url: config.DEFAULT.transport_url,
      log,
      timeoutMs: config.DEFAULT.rpc_response_timeout * 1000,
    });
    const hooks = await makeHooks({ config, runner, log, broker });
    const agent = createAgent({ kind, config, broker, log, hooks });
    await agent.start();
    return { stop: () => agent.stop() };
  });
}

/** Until an agent type manages resources (later issues) its resync has nothing to do. */
export const nothingHosted = async () => {};
