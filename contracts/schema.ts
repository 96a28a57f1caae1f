/**
 * A small runtime validator whose schemas are also the static types.
 *
 * Invariant: every value that crosses an edge (HTTP body, AMQP message, config) passes
 * through `parse`, which either returns a fully typed value or throws a ValidationError
 * naming the offending field by its path (`agent.admin_state_up`). Strings reject control
 * characters by default, so newlines never reach a file, rule or device name, and lone
 * UTF-16 surrogates, which no database or file can store as sent; their lengths count
 * characters (code points), as Neutron and Nova do. Objects recognise only their schema's
 * own keys, so `constructor` or `__proto__` is refused like any unknown attribute.
 */

export class ValidationError extends Error {
  readonly field: string;
  readonly reason: string;
  constructor(field: string, reason: string) {
    super(field ? `${field}: ${reason}` : reason);
    this.name = 'ValidationError';
    this.field = field;
    this.reason = reason;
  }
}

export interface Schema<T> {
  readonly kind: string;
  readonly optional?: boolean;
  parse(value: unknown, path?: string): T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

const CONTROL = /[\u0000-\u001f\u007f]/;

/** `s` as text a contract string accepts: control characters (newlines, tabs) become spaces. */
export function oneLine(s: string, max: number): string {
  return s
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .trim()
    .slice(0, max);
}

function fail(path: string, reason: string): never {
  throw new ValidationError(path, reason);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing (the request body is empty)';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `"${value.slice(0, 40)}"` : typeof value;
}

export interface StrOptions {
  min?: number;
  max?: number;
  pattern?: RegExp;
  /** Human description of `pattern`, used in the error message. */
  patternName?: string;
}

/** Why `s` is not well-formed UTF-16 (it holds a lone surrogate), or undefined. */
function surrogateProblem(s: string): string | undefined {
  if (s.isWellFormed()) return undefined;
  const lone = [...s].find((c) => c.length === 1 && /[\ud800-\udfff]/.test(c)) ?? '';
  const code = (lone.codePointAt(0) ?? 0).toString(16).toUpperCase();
  return `must be well-formed Unicode (it contains a lone surrogate, U+${code})`;
}

/** The code points of `s` as compared with min..max: its UTF-16 length when that already
 * lies in 2·min..max (the count cannot then fall outside min..max), else counted. */
function charCount(s: string, atLeast: number, atMost: number): number {
  if (s.length <= atMost && s.length >= 2 * atLeast) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export function str(opts: StrOptions = {}): Schema<string> {
  const { min = 0, max = 255 } = opts;
  return {
    kind: 'string',
    parse(value, path = '') {
      if (typeof value !== 'string') return fail(path, `must be a string, got ${describe(value)}`);
      if (CONTROL.test(value)) return fail(path, 'must not contain control characters');
      const surrogate = surrogateProblem(value);
      if (surrogate) return fail(path, surrogate);
      const chars = charCount(value, min, max);
      if (chars < min) return fail(path, `must be at least ${min} characters`);
      if (chars > max) return fail(path, `must be at most ${max} characters`);
      if (opts.pattern && !opts.pattern.test(value)) {
        return fail(path, `must be ${opts.patternName ?? `a string matching ${opts.pattern}`}`);
      }
      return value;
    },
  };
}

export function int(opts: { min?: number; max?: number } = {}): Schema<number> {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = opts;
  return {
    kind: 'integer',
    parse(value, path = '') {
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        return fail(path, `must be an integer, got ${describe(value)}`);
      }
      if (value < min || value > max) return fail(path, `must be between ${min} and ${max}`);
      return value;
    },
  };
}

export function bool(): Schema<boolean> {
  return {
    kind: 'boolean',
    parse(value, path = '') {
      if (typeof value !== 'boolean')
        return fail(path, `must be true or false, got ${describe(value)}`);
      return value;
    },
  };
}

export function oneOf<const T extends readonly string[]>(values: T): Schema<T[number]> {
  return {
    kind: 'enum',
    parse(value, path = '') {
      if (typeof value !== 'string' || !values.includes(value)) {
        return fail(path, `must be one of ${values.map((v) => `"${v}"`).join(', ')}`);
      }
      return value as T[number];
    },
  };
}

export function optional<T>(schema: Schema<T>): Schema<T | undefined> {
  return {
    kind: schema.kind,
    optional: true,
    parse(value, path = '') {
      return value === undefined ? undefined : schema.parse(value, path);
    },
  };
}

export function nullable<T>(schema: Schema<T>): Schema<T | null> {
  return {
    kind: schema.kind,
    parse(value, path = '') {
      return value === null ? null : schema.parse(value, path);
    },
  };
}

export function arr<T>(item: Schema<T>, opts: { min?: number; max?: number } = {}): Schema<T[]> {
  const { min = 0, max = 1000 } = opts;
  return {
    kind: 'array',
    parse(value, path = '') {
      if (!Array.isArray(value)) return fail(path, `must be an array, got ${describe(value)}`);
      if (value.length > max) return fail(path, `must have at most ${max} items`);
      if (value.length < min) return fail(path, `must have at least ${min} item(s)`);
      return value.map((v, i) => item.parse(v, `${path}[${i}]`));
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: undefined extends Infer<S[K]> ? K : never;
}[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjOf<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Infer<S[K]>;
};

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An object with exactly these keys: unknown keys are refused, naming the first one. */
export function obj<S extends Shape>(shape: S): Schema<ObjOf<S>> & { shape: S } {
  return {
    kind: 'object',
    shape,
    parse(value, path = '') {
      if (!isPlainObject(value)) return fail(path, `must be an object, got ${describe(value)}`);
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(shape, key))
          return fail(join(path, key), 'is not a recognised attribute');
      }
      const out: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(shape)) {
        const given = Object.hasOwn(value, key) ? value[key] : undefined;
        if (given === undefined && !schema.optional) fail(join(path, key), 'is required');
        const v = schema.parse(given, join(path, key));
        if (v !== undefined) out[key] = v;
      }
      return out as ObjOf<S>;
    },
  };
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Free-form JSON data with bounded depth and size (agent `configurations`). */
export function json(
  opts: { maxDepth?: number; maxBytes?: number } = {},
): Schema<Record<string, Json>> {
  const { maxDepth = 6, maxBytes = 65536 } = opts;
  const check = (v: unknown, path: string, depth: number): void => {
    if (depth > maxDepth) fail(path, `nests deeper than ${maxDepth} levels`);
    if (typeof v === 'string') {
      const surrogate = surrogateProblem(v);
      if (surrogate) fail(path, surrogate);
      return;
    }
    if (v === null || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) fail(path, 'must be a finite number');
      return;
    }
    if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) check(item, `${path}[${i}]`, depth + 1);
      return;
    }
    if (isPlainObject(v)) {
      for (const [k, item] of Object.entries(v)) {
        if (CONTROL.test(k)) fail(path, 'keys must not contain control characters');
        if (!k.isWellFormed()) fail(path, 'keys must be well-formed Unicode');
        check(item, join(path, k), depth + 1);
      }
      return;
    }
    fail(path, `is not JSON data (${typeof v})`);
  };
  return {
    kind: 'json',
    parse(value, path = '') {
      if (!isPlainObject(value)) return fail(path, `must be an object, got ${describe(value)}`);
      check(value, path, 1);
      if (JSON.stringify(value).length > maxBytes) fail(path, `must be at most ${maxBytes} bytes`);
      return value as Record<string, Json>;
    },
  };
}

export const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const hostname = () =>
  str({ min: 1, max: 253, pattern: HOSTNAME, patternName: 'a valid host name' });
export const uuid = () => str({ pattern: UUID, patternName: 'a lowercase UUID' });

/** A Keystone project id (its column holds 64): what every project a request names is. */
export const PROJECT_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const projectId = () =>
  str({ min: 1, max: 64, pattern: PROJECT_ID, patternName: 'a project id' });
