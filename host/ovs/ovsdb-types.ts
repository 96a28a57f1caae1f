/**
 * OVSDB's JSON notation (RFC 7047 §5.1) and operations (§5.2), typed, with encoders,
 * decoders and operation builders. Pure: no I/O.
 *
 * Invariant: the builders produce exactly the wire form ovsdb-server accepts, and the
 * decoders accept every form it sends (a one-element set or an empty optional column may
 * arrive as a bare atom or as ["set", [...]]), so callers never look at the tags.
 */

export type OvsdbUuid = ['uuid', string];
export type OvsdbNamedUuid = ['named-uuid', string];
export type OvsdbAtom = string | number | boolean | OvsdbUuid | OvsdbNamedUuid;
export type OvsdbSet<T extends OvsdbAtom = OvsdbAtom> = ['set', T[]];
export type OvsdbMap<K extends OvsdbAtom = OvsdbAtom, V extends OvsdbAtom = OvsdbAtom> = [
  'map',
  [K, V][],
];
export type OvsdbValue = OvsdbAtom | OvsdbSet | OvsdbMap;
export type OvsdbRow = Record<string, OvsdbValue>;

export type OvsdbFunction = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'includes' | 'excludes';
export type OvsdbCondition = [column: string, fn: OvsdbFunction, value: OvsdbValue];
export type OvsdbMutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
export type OvsdbMutation = [column: string, mutator: OvsdbMutator, value: OvsdbValue];

export type OvsdbOperation =
  | { op: 'insert'; table: string; row: OvsdbRow; 'uuid-name'?: string }
  | { op: 'select'; table: string; where: OvsdbCondition[]; columns?: string[] }
  | { op: 'update'; table: string; where: OvsdbCondition[]; row: OvsdbRow }
  | { op: 'mutate'; table: string; where: OvsdbCondition[]; mutations: OvsdbMutation[] }
  | { op: 'delete'; table: string; where: OvsdbCondition[] }
  | {
      op: 'wait';
      table: string;
      where: OvsdbCondition[];
      columns: string[];
      until: '==' | '!=';
      rows: OvsdbRow[];
      timeout?: number;
    }
  | { op: 'commit'; durable: boolean }
  | { op: 'abort' }
  | { op: 'comment'; comment: string }
  | { op: 'assert'; lock: string };

/** One element of a transact reply; `error` set means that operation (or the commit) failed. */
export interface OvsdbOpResult {
  uuid?: OvsdbUuid;
  rows?: OvsdbRow[];
  count?: number;
  error?: string;
  details?: string;
}

export interface MonitorRequest {
  columns?: string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}
export type MonitorRequests = Record<string, MonitorRequest | MonitorRequest[]>;

/** `old` absent: inserted (or initial); `new` absent: deleted; both: modified (old has only changed columns). */
export interface RowUpdate {
  old?: OvsdbRow;
  new?: OvsdbRow;
}
/** table → row uuid → update. */
export type TableUpdates = Record<string, Record<string, RowUpdate>>;

export interface DbSchema {
  name: string;
  version: string;
  cksum?: string;
  tables: Record<string, { columns: Record<string, unknown>; indexes?: string[][] }>;
}

// ---- encoders -------------------------------------------------------------------------

export const uuid = (x: string): OvsdbUuid => ['uuid', x];
export const namedUuid = (name: string): OvsdbNamedUuid => ['named-uuid', name];
export const set = <T extends OvsdbAtom>(xs: readonly T[]): OvsdbSet<T> => ['set', [...xs]];
export function map<V extends OvsdbAtom>(obj: Record<string, V>): OvsdbMap<string, V> {
  return ['map', Object.entries(obj)];
}

// ---- decoders -------------------------------------------------------------------------

export function isUuid(v: unknown): v is OvsdbUuid {
  return Array.isArray(v) && v.length === 2 && v[0] === 'uuid' && typeof v[1] === 'string';
}

function isTagged(v: unknown, tag: 'set' | 'map'): v is [string, unknown[]] {
  return Array.isArray(v) && v.length === 2 && v[0] === tag && Array.isArray(v[1]);
}

/** A set column as an array; a bare atom is a one-element set; undefined is empty. */
export function fromSet<T extends OvsdbAtom = OvsdbAtom>(v: OvsdbValue | undefined): T[] {
  if (v === undefined) return [];
  if (isTagged(v, 'set')) return v[1] as T[];
  if (isTagged(v, 'map')) throw new TypeError('fromSet: got a map');
  return [v as T];
}

/** A map column as a record (keys stringified: OVSDB map keys may be integers). */
export function fromMap<V extends OvsdbAtom = OvsdbAtom>(
  v: OvsdbValue | undefined,
): Record<string, V> {
  if (v === undefined) return {};
  if (!isTagged(v, 'map')) throw new TypeError(`fromMap: not a map: ${JSON.stringify(v)}`);
  const out: Record<string, V> = {};
  for (const pair of v[1] as [OvsdbAtom, V][]) out[String(pair[0])] = pair[1];
  return out;
}

/** An optional (0..1) column: the atom, or undefined for the empty set. */
export function fromOptional<T extends OvsdbAtom = OvsdbAtom>(
  v: OvsdbValue | undefined,
): T | undefined {
  const xs = fromSet<T>(v);
  return xs[0];
}

// ---- operation builders ---------------------------------------------------------------

export function insert(table: string, row: OvsdbRow, uuidName?: string): OvsdbOperation {
  return uuidName === undefined
    ? { op: 'insert', table, row }
    : { op: 'insert', table, row, 'uuid-name': uuidName };
}
export function select(table: string, where: OvsdbCondition[], columns?: string[]): OvsdbOperation {
  return columns === undefined
    ? { op: 'select', table, where }
    : { op: 'select', table, where, columns };
}
export function update(table: string, where: OvsdbCondition[], row: OvsdbRow): OvsdbOperation {
  return { op: 'update', table, where, row };
}
export function mutate(
  table: string,
  where: OvsdbCondition[],
  mutations: OvsdbMutation[],
): OvsdbOperation {
  return { op: 'mutate', table, where, mutations };
}
/** `delete` is a keyword; exported as `del` and as `delete` via the alias below. */
export function del(table: string, where: OvsdbCondition[]): OvsdbOperation {
  return { op: 'delete', table, where };
}
export { del as delete };
export function wait(
  table: string,
  where: OvsdbCondition[],
  opts: { columns: string[]; until: '==' | '!='; rows: OvsdbRow[]; timeoutMs?: number },
): OvsdbOperation {
  const { columns, until, rows, timeoutMs } = opts;
  return timeoutMs === undefined
    ? { op: 'wait', table, where, columns, until, rows }
    : { op: 'wait', table, where, columns, until, rows, timeout: timeoutMs };
}
/** Shows up in ovsdb-server's log for the transaction: say who changed what. */
export function comment(text: string): OvsdbOperation {
  return { op: 'comment', comment: text };
}
