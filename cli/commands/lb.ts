/**
 * The `kumo lb-*` command group (LBaaS v1, neutron CLI style): pools, VIPs, stats and the
 * LBaaS agent scheduler in lb-pools.ts; members and health monitors in lb-members.ts.
 *
 * Invariant: every command and option name is the neutron CLI's (python3-neutronclient
 * 8.1.0), so the seed's walkthrough reads the same with `kumo` as with `neutron`.
 */
import type { Command } from 'commander';
import type { CommandContext } from '../client.ts';
import { registerMemberCommands } from './lb-members.ts';
import { registerPoolCommands } from './lb-pools.ts';

/** Adds the LBaaS commands to the root program. */
export function registerLbCommands(program: Command, ctx: CommandContext): void {
  registerPoolCommands(program, ctx);
  registerMemberCommands(program, ctx);
}
