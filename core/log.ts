/**
 * Structured JSON logs (pino) to stdout, for journald.
 *
 * Invariant: every daemon creates exactly one root logger from its compiled config and
 * passes children down; a line about a resource carries that resource's id as a field.
 */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(opts: { name: string; debug?: boolean; level?: string }): Logger {
  const level = opts.level ?? (opts.debug ? 'debug' : 'info');
  return pino({ name: opts.name, level, base: { pid: process.pid } });
}

/** A logger that writes nothing, for unit tests that do not inspect logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
