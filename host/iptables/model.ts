/**
 * The in-memory model of one agent's part of one namespace's iptables: tables → our chains
 * → rules, all under the agent's chain prefix (Neutron's iptables_manager layout).
 *
 * - A chain keyed by a builtin chain's name (`POSTROUTING` in nat) is our *wrapper* chain
 *   `<prefix>-POSTROUTING`, jumped to by exactly one `-j <prefix>-POSTROUTING` rule in the
 *   builtin. Any other key (`snat`) is our own chain `<prefix>-snat`, reached from our rules.
 * - A chain is ours iff its name is `<prefix>-<suffix>` with a suffix of [A-Za-z0-9_] only.
 *   Suffixes carry no `-`, so agents with prefixes `kumo` and `kumo-l3` never claim each
 *   other's chains; everything else in the namespace is foreign and never touched.
 *
 * Invariant: `validateModel` is the only way from a model to an `OwnedState`, and it refuses
 * (ValidationError naming the field) any token that could break out of its rule line in an
 * `iptables-restore` input (spaces, quotes, newlines, `;`, `#`), any option that is a command
 * rather than a match/target (`-A`, `-X`, `-t` …), chain names over 28 characters, and jumps
 * to chains of ours the model does not declare. Rules come back in iptables-save's canonical
 * spelling (canonical.ts), so the observed state can be compared token for token. Pure.
 */
import { ValidationError } from '../../contracts/schema.ts';
import { canonicalRule } from './canonical.ts';

export type IptablesTable = 'filter' | 'nat' | 'mangle' | 'raw';
export type IpFamily = 4 | 6;
/** One rule as argv-like tokens, without `-A <chain>`: `['-s','10.0.0.0/24','-j','SNAT',…]`. */
export type Rule = readonly string[];

/** Tables in the order they are rendered. */
export const TABLES: readonly IptablesTable[] = ['filter', 'nat', 'mangle', 'raw'];

/** The builtin chains of each table (the same for iptables and ip6tables). */
export const BUILTIN_CHAINS: Readonly<Record<IptablesTable, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

/** xtables' chain name limit (XT_EXTENSION_MAXNAMELEN - 1). */
export const MAX_CHAIN_NAME = 28;

export interface IptablesModel {
  family: IpFamily;
  /** The agent's chain prefix, e.g. `kumo-l3`. */
  prefix: string;
  /** Per table: chain key (a builtin name for a wrapper, or a lower-case suffix) → rules. */
  tables: Partial<Record<IptablesTable, Readonly<Record<string, readonly Rule[]>>>>;
}

/** Our part of one table, by full chain name; the shape both the model and observe produce. */
export interface OwnedTable {
  /** Our chains (full names) → their rules in canonical tokens, in declaration order. */
  chains: Map<string, Rule[]>;
  /** Builtin chain → how many `-j <prefix>-<builtin>` rules it holds (model: 1 per wrapper). */
  jumps: Map<string, number>;
}

export interface OwnedState {
  family: IpFamily;
  prefix: string;
  tables: Map<IptablesTable, OwnedTable>;
}

const PREFIX = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const SUFFIX = /^[a-z0-9_]+$/;
const OWNED_SUFFIX = /^[A-Za-z0-9_]+$/;
/** One word of a rule: nothing that could split, quote, comment or end a restore line. */
const TOKEN = /^[A-Za-z0-9_.:/,!+-]{1,255}$/;
/** Commands and table switches: a rule may only add matches and a target to its own line. */
const COMMAND_OPTIONS = new Set([
  ...['-A', '-C', '-D', '-E', '-F', '-I', '-L', '-N', '-P', '-R', '-S', '-X', '-Z', '-t'],
  ...['--append', '--check', '--delete', '--rename-chain', '--flush', '--insert', '--list'],
  ...['--new-chain', '--policy', '--replace', '--list-rules', '--delete-chain', '--zero'],
  ...['--table', '-4', '-6', '--ipv4', '--ipv6', '--line-numbers'],
]);

/** The full name of one of our chains: `<prefix>-<name>`. */
export function chainName(prefix: string, name: string): string {
  return `${prefix}-${name}`;
}

/** Whether a chain name belongs to this prefix (see the module comment). */
export function isOwnedChain(name: string, prefix: string): boolean {
  return name.startsWith(`${prefix}-`) && OWNED_SUFFIX.test(name.slice(prefix.length + 1));
}

export function emptyOwnedTable(): OwnedTable {
  return { chains: new Map(), jumps: new Map() };
}

function assertPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !PREFIX.test(prefix) || prefix.length > 24)
    throw new ValidationError(
      'prefix',
      'must be 1-24 of [a-z0-9] in dash-separated words, starting with a letter',
    );
  return prefix;
}

function assertChainKey(table: IptablesTable, key: string, prefix: string, field: string): string {
  if (!BUILTIN_CHAINS[table].includes(key) && !SUFFIX.test(key))
    throw new ValidationError(
      field,
      `must be a builtin chain of ${table} (${BUILTIN_CHAINS[table].join(', ')}) or [a-z0-9_]+`,
    );
  const full = chainName(prefix, key);
  if (full.length > MAX_CHAIN_NAME)
    throw new ValidationError(field, `chain name ${full} is longer than ${MAX_CHAIN_NAME}`);
  return full;
}

function assertRuleTokens(rule: unknown, field: string): readonly string[] {
  if (!Array.isArray(rule) || rule.length === 0)
    throw new ValidationError(field, 'must be a non-empty array of tokens');
  rule.forEach((token, i) => {
    if (typeof token !== 'string' || !TOKEN.test(token))
      throw new ValidationError(
        `${field}[${i}]`,
        `${JSON.stringify(token)} must be 1-255 of [A-Za-z0-9_.:/,!+-]`,
      );
    if (COMMAND_OPTIONS.has(token))
      throw new ValidationError(`${field}[${i}]`, `${token} is a command, not a match or target`);
  });
  return rule as string[];
}

/** Refuses `-j/-g <prefix>-x` when x is not a chain of this table in the model. */
function assertJumps(rule: Rule, declared: ReadonlySet<string>, prefix: string, field: string) {
  rule.forEach((token, i) => {
    if (token !== '-j' && token !== '-g') return;
    const target = rule[i + 1];
    if (target === undefined)
      throw new ValidationError(`${field}[${i}]`, `${token} needs a target`);
    if (target.startsWith(`${prefix}-`) && !declared.has(target))
      throw new ValidationError(`${field}[${i + 1}]`, `chain ${target} is not in the model`);
  });
}

function validateTable(
  table: IptablesTable,
  chains: unknown,
  model: { family: IpFamily; prefix: string },
): OwnedTable {
  const field = `tables.${table}`;
  if (typeof chains !== 'object' || chains === null || Array.isArray(chains))
    throw new ValidationError(field, 'must be an object of chain → rules');
  const entries = Object.entries(chains as Record<string, unknown>);
  const owned = emptyOwnedTable();
  const names = entries.map(([key]) => assertChainKey(table, key, model.prefix, `${field}.${key}`));
  const declared = new Set(names);
  entries.forEach(([key, rules], c) => {
    const chainField = `${field}.${key}`;
    if (!Array.isArray(rules)) throw new ValidationError(chainField, 'must be an array of rules');
    const canonical = rules.map((rule, r) => {
      const tokens = assertRuleTokens(rule, `${chainField}[${r}]`);
      assertJumps(tokens, declared, model.prefix, `${chainField}[${r}]`);
      return canonicalRule(tokens, model.family, `${chainField}[${r}]`);
    });
    owned.chains.set(names[c] as string, canonical);
    if (BUILTIN_CHAINS[table].includes(key)) owned.jumps.set(key, 1);
  });
  return owned;
}

/** Checks a model and returns what it asks for, in the same shape observe produces. */
export function validateModel(model: IptablesModel): OwnedState {
  if (typeof model !== 'object' || model === null)
    throw new ValidationError('', 'model must be an object');
  if (model.family !== 4 && model.family !== 6)
    throw new ValidationError('family', 'must be 4 or 6');
  const prefix = assertPrefix(model.prefix);
  if (typeof model.tables !== 'object' || model.tables === null)
    throw new ValidationError('tables', 'must be an object of table → chains');
  const tables = new Map<IptablesTable, OwnedTable>();
  for (const [table, chains] of Object.entries(model.tables)) {
    if (!(TABLES as readonly string[]).includes(table))
      throw new ValidationError(`tables.${table}`, `must be one of ${TABLES.join(', ')}`);
    const t = table as IptablesTable;
    tables.set(t, validateTable(t, chains, { family: model.family, prefix }));
  }
  return { family: model.family, prefix, tables };
}
