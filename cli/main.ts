/**
 * The `kumo` command line: builds the commander program (global endpoint options plus
 * every command group) and runs it in-process against the given streams.
 *
 * Invariant: main() never exits the process and never throws; it returns the exit code —
 * 0 on success, 2 for a usage error, 1 for anything else — and every failure writes
 * exactly one line, prefixed `kumo: `, to io.stderr.
 */
import { Command, CommanderError } from 'commander';
import {
  type CommandContext,
  createClient,
  type EndpointFlags,
  resolveEndpoint,
} from './client.ts';
import { registerAgentCommands } from './commands/agents.ts';
import { registerDhcpCommands } from './commands/dhcp.ts';
import { registerL3Commands } from './commands/l3.ts';
import { registerLbCommands } from './commands/lb.ts';
import { type CliIo, UsageError } from './format.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Collapses a message to one line, dropping commander's `error: ` prefix. */
export function oneLine(message: string): string {
  return message
    .replace(/^\s*error:\s*/i, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function failLine(io: CliIo, message: string): void {
  io.stderr.write(`kumo: ${oneLine(message)}\n`);
}

/** The root program; usage errors go to io.stderr as one line and throw CommanderError. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('kumo')
    .description('command line client for kumo-api (OpenStack Neutron style)')
    .option('--os-url <url>', 'kumo-api endpoint (env KUMO_URL, OS_URL)')
    .option('--os-token <token>', 'auth token (env KUMO_TOKEN, OS_TOKEN)')
    .option('--config-file <path>', 'kumo.conf for [api] defaults (env KUMO_CONFIG)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      // Only help shown because of an error comes here; main() replaces it with one line.
      writeErr: () => {},
      outputError: (s) => failLine(io, s),
    });
  const ctx: CommandContext = {
    io,
    client: (command) => {
      const flags = command.optsWithGlobals<EndpointFlags>();
      return createClient({ ...resolveEndpoint(flags, io.env), fetch: io.fetch });
    },
  };
  registerAgentCommands(program, ctx);
  registerDhcpCommands(program, ctx);
  registerL3Commands(program, ctx);
  registerLbCommands(program, ctx);
  return program;
}

function exitCodeFor(e: unknown, io: CliIo): number {
  if (e instanceof CommanderError) {
    if (e.exitCode === 0) return EXIT_OK; // --help, help
    if (e.code === 'commander.help') failLine(io, "missing command; see 'kumo --help'");
    return EXIT_USAGE; // commander already wrote the message through outputError
  }
  if (e instanceof UsageError) {
    failLine(io, e.message);
    return EXIT_USAGE;
  }
  failLine(io, e instanceof Error ? e.message : String(e));
  return EXIT_FAILURE;
}

function defaultIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** Runs `kumo <argv...>` (arguments only, no node/script) and returns the exit code. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    return exitCodeFor(e, io);
  }
}
