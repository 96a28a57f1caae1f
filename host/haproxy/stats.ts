/**
 * Our own small client for haproxy's stats socket (a unix socket in its namespace's
 * directory): one command per connection, the reply read to EOF. `showStat` parses `show
 * stat`'s CSV by its header's column names into typed rows; `showInfo` reads `show info`.
 *
 * Invariants: only the fixed commands below are ever written (nothing from outside reaches
 * the socket); a reply larger than `maxBytes` or slower than `timeoutMs` is an error, never a
 * partial result; a numeric column that is empty is null (haproxy leaves columns empty that do
 * not apply to a row's type); a row of an unknown type is left out. Reads only.
 */
import { createConnection } from 'node:net';
import { checkPath } from './checks.ts';

export type StatType = 'frontend' | 'backend' | 'server' | 'listener';

/** One row of `show stat` (haproxy's column names). */
export interface StatRow {
  pxname: string;
  svname: string;
  type: StatType;
  /** Current, maximum and total sessions. */
  scur: number;
  smax: number;
  stot: number;
  /** Bytes in from clients, out to clients. */
  bin: number;
  bout: number;
  ereq: number | null;
  econ: number | null;
  eresp: number | null;
  /** UP, DOWN, OPEN, no check, MAINT, `UP 1/2` (going down) … */
  status: string;
  weight: number | null;
  /** Seconds since the last status change. */
  lastchg: number | null;
  chkfail: number | null;
  /** e.g. L4OK, L4CON, L7OK, L7STS, L4TOUT; '' when not checked. */
  check_status: string;
  check_code: number | null;
}

export interface StatsOptions {
  /** Milliseconds for the whole exchange; default 3000. */
  timeoutMs?: number;
  /** Largest reply accepted; default 4 MiB. */
  maxBytes?: number;
}

const TYPES: Record<string, StatType> = {
  '0': 'frontend',
  '1': 'backend',
  '2': 'server',
  '3': 'listener',
};
const COUNTERS = ['scur', 'smax', 'stot', 'bin', 'bout'] as const;
const OPTIONAL = ['ereq', 'econ', 'eresp', 'weight', 'lastchg', 'chkfail', 'check_code'] as const;

/** Sends one fixed command and resolves with the whole reply. */
export function statsCommand(
  socket: string,
  command: 'show stat' | 'show info',
  o: StatsOptions = {},
): Promise<string> {
  const path = checkPath(socket, 'socket');
  const timeoutMs = o.timeoutMs ?? 3000;
  const maxBytes = o.maxBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const conn = createConnection({ path });
    const fail = (e: Error) => {
      conn.destroy();
      reject(e);
    };
    conn.setTimeout(timeoutMs, () =>
      fail(new Error(`stats socket ${path}: no reply in ${timeoutMs} ms`)),
    );
    conn.on('connect', () => conn.end(`${command}\n`));
    conn.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) fail(new Error(`stats socket ${path}: reply over ${maxBytes} bytes`));
      else chunks.push(chunk);
    });
    conn.on('error', fail);
    conn.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

const num = (v: string | undefined): number | null =>
  v === undefined || v === '' ? null : Number(v);

/** The typed row, or null for a row type this client does not know. */
function row(cells: Map<string, string>): StatRow | null {
  const type = TYPES[cells.get('type') ?? ''];
  if (type === undefined) return null;
  const out: Record<string, unknown> = {
    pxname: cells.get('pxname') ?? '',
    svname: cells.get('svname') ?? '',
    type,
    status: cells.get('status') ?? '',
    check_status: cells.get('check_status') ?? '',
  };
  for (const k of COUNTERS) out[k] = num(cells.get(k)) ?? 0;
  for (const k of OPTIONAL) out[k] = num(cells.get(k));
  return out as unknown as StatRow;
}

/** One CSV line's cells; a quoted cell may hold commas and doubled quotes (free-text columns). */
export function splitCsv(line: string): string[] {
  const cells: string[] = [];
  const re = /("(?:[^"]|"")*"|[^,]*)(,|$)/g;
  for (const m of line.matchAll(re)) {
    const cell = m[1] ?? '';
    cells.push(cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell);
    if (m[2] === '') break;
  }
  return cells;
}

/** `show stat`'s CSV (`# pxname,svname,…` then one line per row) as typed rows. */
export function parseStat(csv: string): StatRow[] {
  const [head, ...lines] = csv.split('\n');
  if (head === undefined || !head.startsWith('# ')) throw new Error('show stat: no CSV header');
  const names = splitCsv(head.slice(2));
  return lines
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const values = splitCsv(l);
      return row(new Map(names.map((n, i) => [n, values[i] ?? ''])));
    })
    .filter((r) => r !== null);
}

export async function showStat(socket: string, o?: StatsOptions): Promise<StatRow[]> {
  return parseStat(await statsCommand(socket, 'show stat', o));
}

/** `show info`'s `Name: value` lines. */
export function parseInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf(': ');
    if (at > 0) info[line.slice(0, at)] = line.slice(at + 2);
  }
  return info;
}

/** The process's pid and the raw fields of `show info`. */
export async function showInfo(
  socket: string,
  o?: StatsOptions,
): Promise<{ pid: number; info: Record<string, string> }> {
  const info = parseInfo(await statsCommand(socket, 'show info', o));
  const pid = Number(info.Pid);
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error('show info: no Pid');
  return { pid, info };
}

/**
 * Whether `socket` is the admin socket of the haproxy `pid` (its `show info` answers with that
 * Pid). A reload may pass it as `-x` only then: haproxy 2.6 refuses to start when `-x` names
 * a socket it cannot get the listeners from (the old process keeps serving).
 */
export async function servesSocket(
  socket: string,
  pid: number,
  o?: StatsOptions,
): Promise<boolean> {
  try {
    return (await showInfo(socket, o)).pid === pid;
  } catch {
    return false;
  }
}
