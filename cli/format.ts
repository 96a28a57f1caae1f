/**
 * Output shared by every kumo command group: rows rendered as an ASCII table (OpenStack
 * CLI look), as JSON, or as bare values for scripts; plus the I/O and usage-error
 * vocabulary commands use to talk to main().
 *
 * Invariant: formatting is pure (data in, string out) and only `table` applies a command's
 * display formatters, so `json` keeps the API's types and `value` stays script-friendly.
 * A column the command does not know is a UsageError, raised before anything is printed.
 */

import Table from 'cli-table3';
import { type Command, Option } from 'commander';

export const OUTPUT_FORMATS = ['table', 'json', 'value'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** One resource as the API returns it, field by field. */
export type Row = Record<string, unknown>;

/** Per-column renderers for table output, e.g. `alive` → `:-)` / `xxx`. */
export type DisplayFormatters = Readonly<Record<string, (value: unknown) => string>>;

export interface Writer {
  write(chunk: string): unknown;
}

/** Where a command run reads its environment and writes; tests pass capturing fakes. */
export interface CliIo {
  stdout: Writer;
  stderr: Writer;
  env: Readonly<Record<string, string | undefined>>;
  /** The HTTP transport; defaults to the global fetch. Lets tests run commands offline. */
  fetch?: typeof fetch;
}

/** A mistake in how the command was invoked: main() reports it and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Generic rendering of one value: booleans as True/False, objects as JSON, null empty. */
export function cellText(value: unknown, pretty = true): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return JSON.stringify(value, null, pretty ? 2 : undefined);
  return String(value);
}

/**
 * The columns to show: `requested` (in the order given, duplicates dropped) or the
 * defaults; every requested name must be one of `known`.
 */
export function selectColumns(
  known: readonly string[],
  requested: readonly string[] | undefined,
  defaults: readonly string[],
): string[] {
  if (!requested || requested.length === 0) return [...defaults];
  const unknown = requested.filter((c) => !known.includes(c));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown column ${unknown.map((c) => `'${c}'`).join(', ')} (choose from ${known.join(', ')})`,
    );
  }
  return [...new Set(requested)];
}

function pick(row: Row, columns: readonly string[]): Row {
  return Object.fromEntries(columns.map((c) => [c, row[c] ?? null]));
}

function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function renderTable(head: readonly string[], body: readonly string[][]): string {
  const table = new Table({
    head: [...head],
    style: { head: [], border: [], compact: true },
    chars: {
      top: '-',
      'top-mid': '+',
      'top-left': '+',
      'top-right': '+',
      bottom: '-',
      'bottom-mid': '+',
      'bottom-left': '+',
      'bottom-right': '+',
      left: '|',
      'left-mid': '+',
      mid: '-',
      'mid-mid': '+',
      right: '|',
      'right-mid': '+',
      middle: '|',
    },
  });
  table.push(...body);
  return `${table.toString()}\n`;
}

function tableCell(column: string, value: unknown, formatters: DisplayFormatters): string {
  const render = formatters[column];
  return render ? render(value) : cellText(value);
}

/** JSON with Python's json.dumps separators (", " and ": "), as the neutron CLI prints. */
export function pyJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  if (typeof v === 'object' && v !== null) {
    const items = Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyJson(x)}`);
    return `{${items.join(', ')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
/** Objects on one line, as the neutron CLI prints them in tables. */
export const compact = (v: unknown) => (v === null || v === undefined ? '' : pyJson(v));
/** A list one item per line (an empty list: an empty cell), as the neutron CLI prints. */
export const lines = (v: unknown) =>
  Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : compact(x))).join('\n') : '';
/** A list of resources, one per row, in the columns given. */
export function formatList(
  rows: readonly Row[],
  columns: readonly string[],
  format: OutputFormat,
  formatters: DisplayFormatters = {},
): string {
  if (format === 'json') return toJson(rows.map((r) => pick(r, columns)));
  if (format === 'value') {
    return rows.map((r) => `${columns.map((c) => cellText(r[c], false)).join(' ')}\n`).join('');
  }
  return renderTable(
    columns,
    rows.map((r) => columns.map((c) => tableCell(c, r[c], formatters))),
  );
}

/** One resource: a Field/Value table with one row per column, as given. */
export function formatShow(
  row: Row,
  columns: readonly string[],
  format: OutputFormat,
  formatters: DisplayFormatters = {},
): string {
  if (format === 'json') return toJson(pick(row, columns));
  if (format === 'value') return columns.map((c) => `${cellText(row[c], false)}\n`).join('');
  return renderTable(
    ['Field', 'Value'],
    columns.map((c) => [c, tableCell(c, row[c], formatters)]),
  );
}

export interface OutputOptions {
  format: OutputFormat;
  column?: string[];
}

/** `-f/--format` and repeatable `-c/--column`, the output options of every show/list command. */
export function outputOptions(command: Command): Command {
  return command
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(OUTPUT_FORMATS).default('table'),
    )
    .addOption(
      new Option('-c, --column <column>', 'show this column (repeatable)').argParser(
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      ),
    );
}
