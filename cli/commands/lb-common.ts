/**
 * What every `kumo lb-*` command shares: the four LBaaS v1 resources as data (path, body
 * key, fields, the neutron CLI's list columns, whether a name is accepted), option
 * parsers that check a value before any request is sent, and the generic list, show,
 * update and delete commands built from one resource descriptor.
 *
 * Invariants:
 * - a bad argument is refused by commander (exit 2) with the option named, before any
 *   request; the API validates again, the CLI only refuses earlier and more clearly;
 * - a reference is used as given when it is a UUID or the resource takes no names (members
 *   and health monitors, as in neutron); otherwise it is an exact name resolved through
 *   ?name=, refused when it matches nothing or several;
 * - an update sends only the fields given, and refuses to send none.
 */
import { isIP } from 'node:net';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { COOKIE_NAME, PERSISTENCE_TYPES } from '../../contracts/lbaas.ts';
import { UUID } from '../../contracts/schema.ts';
import type { CommandContext, KumoClient } from '../client.ts';
import {
  cellText,
  compact,
  type DisplayFormatters,
  formatList,
  formatShow,
  lines,
  type OutputOptions,
  outputOptions,
  type Row,
  selectColumns,
  UsageError,
} from '../format.ts';

/** One LBaaS v1 resource (or a resource a lb-* command refers to, like a subnet). */
export interface LbKind {
  /** The body key of one, as neutron names it in messages: `pool`, `health_monitor`. */
  singular: string;
  /** The body key of a list. */
  plural: string;
  /** The collection's path, e.g. `/v2.0/lb/pools`. */
  path: string;
  /** Whether a name is accepted where an id is (neutron's allow_names). */
  byName: boolean;
  /** Every field `-c` may pick. */
  fields: readonly string[];
  listColumns: readonly string[];
  formatters: DisplayFormatters;
}

export const enc = encodeURIComponent;

function member(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null
    ? (body as Record<string, unknown>)[key]
    : undefined;
}

const isRow = (v: unknown): v is Row => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The list under `key` in an answer, or an error naming the key. */
export function rows(body: unknown, key: string): Row[] {
  const list = member(body, key);
  if (!Array.isArray(list) || !list.every(isRow))
    throw new Error(`unexpected answer from kumo-api: "${key}" is not a list of objects`);
  return list;
}

/** The object under `key` in an answer, or an error naming the key. */
export function one(body: unknown, key: string): Row {
  const found = member(body, key);
  if (!isRow(found)) throw new Error(`unexpected answer from kumo-api: "${key}" is not an object`);
  return found;
}

/** An id from an id or a name (see the module invariant). */
export async function resolveRef(client: KumoClient, kind: LbKind, ref: string): Promise<string> {
  if (UUID.test(ref) || !kind.byName) return ref;
  const found = rows(await client.get(`${kind.path}?name=${enc(ref)}&fields=id`), kind.plural);
  const what = kind.singular.replace('_', ' ');
  if (found.length === 0) throw new Error(`no ${what} with a name or id of '${ref}'`);
  if (found.length > 1) throw new Error(`more than one ${what} is named '${ref}'; use the id`);
  return String(found[0]?.id);
}

/** An integer option in [min, max] (commander reports the option and the value). */
export function intIn(min: number, max: number) {
  return (value: string): number => {
    const n = /^-?[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    throw new InvalidArgumentError(`must be an integer from ${min} to ${max}.`);
  };
}

export function ipAddress(value: string): string {
  if (isIP(value) === 0) throw new InvalidArgumentError('must be an IPv4 or IPv6 address.');
  return value;
}

/** A name or description: one line of printable text (it never reaches a config file). */
export function oneLineText(value: string): string {
  if (/[\u0000-\u001f\u007f]/.test(value) || value.length > 255)
    throw new InvalidArgumentError(
      'must be at most 255 characters without line breaks or controls.',
    );
  return value;
}

export function pattern(re: RegExp, what: string) {
  return (value: string): string => {
    if (!re.test(value)) throw new InvalidArgumentError(`must be ${what}.`);
    return value;
  };
}

export function boolean(value: string): boolean {
  if (/^true$/i.test(value)) return true;
  if (/^false$/i.test(value)) return false;
  throw new InvalidArgumentError('must be True or False.');
}

/** What a parser returns for "set this field to null" (commander turns a null into ''). */
export const CLEAR = Symbol('clear');

/**
 * `--session-persistence type=T[,cookie_name=NAME]` (neutron's key=value form) as the API's
 * object; `action=clear` (updates only) removes persistence. A cookie name goes with
 * APP_COOKIE and only with it, as Neutron requires.
 */
export function parsePersistence(value: string, clearable: boolean): unknown {
  if (clearable && value === 'action=clear') return CLEAR;
  const pairs = value.split(',').map((p) => p.split('='));
  const spec = Object.fromEntries(pairs.map(([k, ...v]) => [k, v.join('=')]));
  const known = Object.keys(spec).every((k) => k === 'type' || k === 'cookie_name');
  if (!known || pairs.length !== Object.keys(spec).length)
    throw new InvalidArgumentError('must be type=TYPE[,cookie_name=NAME].');
  if (!(PERSISTENCE_TYPES as readonly string[]).includes(spec.type ?? ''))
    throw new InvalidArgumentError(`type must be one of ${PERSISTENCE_TYPES.join(', ')}.`);
  const cookie = spec.cookie_name;
  if ((spec.type === 'APP_COOKIE') !== (cookie !== undefined))
    throw new InvalidArgumentError('cookie_name goes with type=APP_COOKIE, and only with it.');
  if (cookie !== undefined && !COOKIE_NAME.test(cookie))
    throw new InvalidArgumentError('cookie_name must be 1-64 letters, digits, _ or -.');
  return cookie === undefined ? { type: spec.type } : { type: spec.type, cookie_name: cookie };
}

/** One option of a create or update command and the body field it sets. */
export interface FieldOption {
  flags: string;
  field: string;
  description: string;
  parse?: (value: string) => unknown;
  choices?: readonly string[];
  required?: boolean;
}

/** `--pool-id` of a member or VIP update: moves it to another pool (an id, as in neutron). */
export const MOVE_TO_POOL: FieldOption = {
  flags: '--pool-id <pool>',
  field: 'pool_id',
  description: 'id of the pool to move to',
  parse: pattern(UUID, 'a pool id (a lowercase UUID)'),
};

/** Adds the options; returns how to read the body fields they set from parsed options. */
export function addFieldOptions(command: Command, specs: readonly FieldOption[]) {
  const added = specs.map((s) => {
    const option = new Option(s.flags, s.description);
    if (s.choices) option.choices(s.choices);
    if (s.parse) option.argParser(s.parse);
    if (s.required) option.makeOptionMandatory();
    command.addOption(option);
    return { option, field: s.field };
  });
  return (opts: Record<string, unknown>): Row =>
    Object.fromEntries(
      added
        .map(({ option, field }) => [field, opts[option.attributeName()]] as const)
        .map(([field, v]) => [field, v === CLEAR ? null : v] as const)
        .filter(([, v]) => v !== undefined),
    );
}

/** Neutron's show rendering of any value: lists one item per line, objects as one-line JSON. */
function neutronValue(v: unknown): string {
  if (Array.isArray(v)) return lines(v);
  return isRow(v) ? compact(v) : cellText(v);
}

function showFormatters(row: Row, formatters: DisplayFormatters): DisplayFormatters {
  return { ...Object.fromEntries(Object.keys(row).map((k) => [k, neutronValue])), ...formatters };
}

/** A Field/Value table of every field the API returned, sorted (neutron's show). */
export function printRow(ctx: CommandContext, kind: LbKind, row: Row, opts: OutputOptions): void {
  const columns = selectColumns(kind.fields, opts.column, Object.keys(row).sort());
  ctx.io.stdout.write(formatShow(row, columns, opts.format, showFormatters(row, kind.formatters)));
}

export function registerList(program: Command, ctx: CommandContext, kind: LbKind, name: string) {
  const list = program.command(name).description(`list ${kind.plural.replace('_', ' ')}`);
  outputOptions(list).action(async (opts: OutputOptions) => {
    const columns = selectColumns(kind.fields, opts.column, kind.listColumns);
    const body = await ctx.client(list).get(kind.path);
    ctx.io.stdout.write(formatList(rows(body, kind.plural), columns, opts.format, kind.formatters));
  });
}

export function registerShow(program: Command, ctx: CommandContext, kind: LbKind, name: string) {
  const what = kind.singular.replace('_', ' ');
  const show = program
    .command(name)
    .description(`show one ${what}`)
    .argument('<ref>', kind.byName ? `${what} id or name` : `${what} id`);
  outputOptions(show).action(async (ref: string, opts: OutputOptions) => {
    const client = ctx.client(show);
    const id = await resolveRef(client, kind, ref);
    printRow(ctx, kind, one(await client.get(`${kind.path}/${enc(id)}`), kind.singular), opts);
  });
}

/** Deletes each ref in turn; the refs deleted, and `ref (reason)` for each that was not. */
async function deleteEach(client: KumoClient, kind: LbKind, refs: readonly string[]) {
  const done: string[] = [];
  const failed: string[] = [];
  for (const ref of refs) {
    try {
      await client.delete(`${kind.path}/${enc(await resolveRef(client, kind, ref))}`);
      done.push(ref);
    } catch (e) {
      failed.push(`${ref} (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return { done, failed };
}

/** neutron's bulk delete: `Deleted pool(s): a, b`, then one error line naming any left. */
export function registerDelete(program: Command, ctx: CommandContext, kind: LbKind, name: string) {
  const what = kind.singular.replace('_', ' ');
  const del = program
    .command(name)
    .description(`delete ${what}s`)
    .argument('<ref...>', kind.byName ? `${what} ids or names` : `${what} ids`);
  del.action(async (refs: string[]) => {
    const { done, failed } = await deleteEach(ctx.client(del), kind, refs);
    if (done.length > 0) ctx.io.stdout.write(`Deleted ${kind.singular}(s): ${done.join(', ')}\n`);
    if (failed.length > 0)
      throw new Error(`unable to delete ${kind.singular}(s): ${failed.join('; ')}`);
  });
}

/** `<name> REF --field value...`: a PUT of the fields given (neutron's UpdateCommand). */
export function registerUpdate(
  program: Command,
  ctx: CommandContext,
  kind: LbKind,
  name: string,
  specs: readonly FieldOption[],
) {
  const what = kind.singular.replace('_', ' ');
  const update = program
    .command(name)
    .description(`update one ${what}`)
    .argument('<ref>', kind.byName ? `${what} id or name` : `${what} id`);
  const fieldsOf = addFieldOptions(update, specs);
  update.action(async (ref: string, opts: Record<string, unknown>) => {
    const body = fieldsOf(opts);
    if (Object.keys(body).length === 0)
      throw new UsageError(
        `nothing to update: give one of ${specs.map((s) => s.flags.split(' ')[0]).join(', ')}`,
      );
    const client = ctx.client(update);
    const id = await resolveRef(client, kind, ref);
    await client.put(`${kind.path}/${enc(id)}`, { [kind.singular]: body });
    ctx.io.stdout.write(`Updated ${kind.singular}: ${ref}\n`);
  });
}

/** neutron's create output: a header line (table only), then the new object's fields. */
export function printCreated(
  ctx: CommandContext,
  kind: LbKind,
  body: unknown,
  opts: OutputOptions,
) {
  const row = one(body, kind.singular);
  if (opts.format === 'table') ctx.io.stdout.write(`Created a new ${kind.singular}:\n`);
  printRow(ctx, kind, row, opts);
}

/** `--admin-state-down`, the create commands' way to start admin-down. */
export function adminStateDown(command: Command): Command {
  return command.option('--admin-state-down', 'set admin state up to false');
}
