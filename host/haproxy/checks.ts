/**
 * The token checks every value passes before it is written into haproxy.cfg or argv: names,
 * header names and literals, absolute paths, canonical IPs, ports, bounded integers.
 *
 * Invariant: a check returns its input unchanged or throws a ValidationError naming the
 * field, so a rendered token is always one of these strict shapes (no space, newline,
 * quote, `#` or `%`). Pure.
 */
import { canonicalIp } from '../../contracts/inet.ts';
import { ValidationError } from '../../contracts/schema.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HEADER = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const LITERAL = /^[A-Za-z0-9_.:/-]{1,255}$/;
const PATH = /^(\/[A-Za-z0-9_.-]+)+$/;
/** A user or group name as useradd/groupadd take it (NAME_REGEX), no `$` suffix. */
const ACCOUNT = /^[a-z_][a-z0-9_-]{0,31}$/;

export function bad(field: string, reason: string, value: unknown): never {
  throw new ValidationError(field, `${reason}, got ${JSON.stringify(value)}`);
}

export function matching(re: RegExp, what: string) {
  return (value: unknown, field: string): string =>
    typeof value === 'string' && re.test(value) ? value : bad(field, `must be ${what}`, value);
}

export const checkName = matching(NAME, 'a name of [A-Za-z0-9_.-]');
export const checkHeaderName = matching(HEADER, 'a header name of [A-Za-z0-9-]');
export const checkLiteral = matching(LITERAL, 'a header value of [A-Za-z0-9_.:/-]');
export const checkAccount = matching(ACCOUNT, 'a user or group name of [a-z0-9_-]');

/** An absolute path without `..`, spaces or control characters. */
export function checkPath(value: unknown, field: string): string {
  const path = matching(PATH, 'an absolute path of [A-Za-z0-9_./-]')(value, field);
  if (path.split('/').some((part) => part === '..' || part === '.'))
    bad(field, 'must not contain . or .. parts', value);
  return path;
}

export function checkIp(value: unknown, field: string): string {
  const ip = typeof value === 'string' ? canonicalIp(value) : undefined;
  return ip !== undefined && ip === value ? ip : bad(field, 'must be a canonical IP', value);
}

export function checkPort(value: unknown, field: string): number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535
    ? (value as number)
    : bad(field, 'must be a port 1-65535', value);
}

/** An integer in [min, max]. */
export function checkCount(value: unknown, field: string, max: number, min = 1): number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max
    ? (value as number)
    : bad(field, `must be an integer ${min}-${max}`, value);
}

/** One of the listed tokens. */
export function checkOneOf<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
): T {
  return allowed.includes(value as T)
    ? (value as T)
    : bad(field, `must be one of ${allowed.join(', ')}`, value);
}

/** `ip:port`, or `[ip]:port` for IPv6; both already checked. */
export const hostPort = (ip: string, port: number) =>
  ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
