/**
 * `iptables-save` / `ip6tables-save` text → tables, chains and rules, and from those the
 * part one prefix owns (the same OwnedState shape validateModel produces).
 *
 * Invariant: parsing is pure and total over what iptables-save prints (comments, `*table`,
 * `:CHAIN POLICY [pkts:bytes]`, `[pkts:bytes] -A CHAIN …` with `-c`, double-quoted words with
 * `\"` escapes, `COMMIT`); anything else is an error naming the line, never a guess. Counters
 * are dropped, so two saves of the same rules compare equal however much traffic passed.
 */
import {
  BUILTIN_CHAINS,
  chainName,
  emptyOwnedTable,
  type IpFamily,
  type IptablesTable,
  isOwnedChain,
  type OwnedState,
  type OwnedTable,
  type Rule,
  TABLES,
} from './model.ts';

export interface SavedChain {
  name: string;
  /** `ACCEPT`/`DROP` for builtin chains, `-` for user chains. */
  policy: string;
  rules: Rule[];
}

export interface SavedTable {
  name: string;
  chains: Map<string, SavedChain>;
}

/** Table name → table, in the order iptables-save printed them. */
export type SavedRuleset = Map<string, SavedTable>;

const COUNTERS = /^\[\d+:\d+\]\s+/;
const CHAIN_LINE = /^:(\S+)\s+(\S+)(?:\s+\[\d+:\d+\])?$/;

/** Splits a rule line into words; `"a \"b\" c"` is one word `a "b" c`. */
export function splitWords(line: string, lineNo = 0): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ' || line[i] === '\t') {
      i++;
      continue;
    }
    let word = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) i++;
        word += line[i++];
      }
      if (line[i] !== '"') throw new Error(`iptables-save line ${lineNo}: unterminated quote`);
      i++;
    } else {
      while (i < line.length && line[i] !== ' ' && line[i] !== '\t') word += line[i++];
    }
    words.push(word);
  }
  return words;
}

function parseRule(table: SavedTable, line: string, lineNo: number) {
  const [op, chain, ...rule] = splitWords(line.replace(COUNTERS, ''), lineNo);
  if (op !== '-A' || chain === undefined)
    throw new Error(`iptables-save line ${lineNo}: expected -A CHAIN, got ${JSON.stringify(line)}`);
  const saved = table.chains.get(chain);
  if (saved === undefined)
    throw new Error(`iptables-save line ${lineNo}: rule for undeclared chain ${chain}`);
  saved.rules.push(rule);
}

/** Parses the whole output of `iptables-save` (one or several tables). */
export function parseSave(text: string): SavedRuleset {
  const tables: SavedRuleset = new Map();
  let table: SavedTable | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const lineNo = index + 1;
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      if (table) throw new Error(`iptables-save line ${lineNo}: table ${table.name} not committed`);
      table = { name: line.slice(1), chains: new Map() };
      tables.set(table.name, table);
      return;
    }
    if (table === undefined) throw new Error(`iptables-save line ${lineNo}: outside a table`);
    if (line === 'COMMIT') {
      table = undefined;
      return;
    }
    const chain = CHAIN_LINE.exec(line);
    if (chain) {
      const [, name = '', policy = ''] = chain;
      table.chains.set(name, { name, policy, rules: [] });
      return;
    }
    parseRule(table, line, lineNo);
  });
  if (table) throw new Error(`iptables-save: table ${table.name} not committed`);
  return tables;
}

function ownedTable(table: IptablesTable, saved: SavedTable, prefix: string): OwnedTable {
  const owned = emptyOwnedTable();
  for (const chain of saved.chains.values())
    if (isOwnedChain(chain.name, prefix)) owned.chains.set(chain.name, chain.rules);
  for (const builtin of BUILTIN_CHAINS[table]) {
    const wrapper = chainName(prefix, builtin);
    const rules = saved.chains.get(builtin)?.rules ?? [];
    const n = rules.filter((r) => r.length === 2 && r[0] === '-j' && r[1] === wrapper).length;
    if (n > 0) owned.jumps.set(builtin, n);
  }
  return owned;
}

/** The part of a saved ruleset that belongs to `prefix`; tables without any of it are left out. */
export function ownedState(saved: SavedRuleset, family: IpFamily, prefix: string): OwnedState {
  const tables = new Map<IptablesTable, OwnedTable>();
  for (const table of TABLES) {
    const t = saved.get(table);
    if (t === undefined) continue;
    const owned = ownedTable(table, t, prefix);
    if (owned.chains.size > 0 || owned.jumps.size > 0) tables.set(table, owned);
  }
  return { family, prefix, tables };
}
