/**
 * Desired and observed OwnedState → one `iptables-restore --noflush` input.
 *
 * Per table that differs: `*table`; a `:chain - [0:0]` declaration for every chain of ours,
 * wanted or stale (in --noflush mode declaring a chain creates or flushes it, and only the
 * declared chains are flushed); `-D` for surplus jumps from builtins to our wrapper chains
 * and `-I <builtin> 1` for a missing one; every rule of our wanted chains (`-A`); `-X` for
 * every stale chain; `COMMIT`. iptables-restore commits each table atomically.
 *
 * Invariants: only chains under the prefix are declared, flushed or deleted, and the only
 * rules of builtin chains it adds or removes are the exact `-j <prefix>-<BUILTIN>` jumps;
 * foreign chains and rules never appear in the text. Tables whose part of ours is already
 * as desired are left out, and equal states render to ''. Pure.
 */
import {
  BUILTIN_CHAINS,
  chainName,
  emptyOwnedTable,
  type IptablesTable,
  type OwnedState,
  type OwnedTable,
  type Rule,
  TABLES,
} from './model.ts';

const EMPTY: OwnedTable = emptyOwnedTable();

function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  return a.length === b.length && a.every((r, i) => r.join(' ') === b[i]?.join(' '));
}

/** Why one table's part of ours differs, or [] when it does not. */
export function tableDifferences(want: OwnedTable, have: OwnedTable): string[] {
  const why: string[] = [];
  for (const [chain, rules] of want.chains) {
    const seen = have.chains.get(chain);
    if (seen === undefined) why.push(`${chain} missing`);
    else if (!sameRules(rules, seen)) why.push(`${chain} rules differ`);
  }
  for (const chain of have.chains.keys()) if (!want.chains.has(chain)) why.push(`${chain} stale`);
  const builtins = new Set([...want.jumps.keys(), ...have.jumps.keys()]);
  for (const builtin of builtins) {
    const w = want.jumps.get(builtin) ?? 0;
    const h = have.jumps.get(builtin) ?? 0;
    if (w !== h) why.push(`${builtin} has ${h} jump(s) to our wrapper, wants ${w}`);
  }
  return why;
}

/** Per table, why it differs; tables already as desired are absent. */
export function differences(
  desired: OwnedState,
  observed: OwnedState,
): Map<IptablesTable, string[]> {
  const out = new Map<IptablesTable, string[]>();
  for (const table of TABLES) {
    const why = tableDifferences(
      desired.tables.get(table) ?? EMPTY,
      observed.tables.get(table) ?? EMPTY,
    );
    if (why.length > 0) out.set(table, why);
  }
  return out;
}

function jumpLines(table: IptablesTable, want: OwnedTable, have: OwnedTable, prefix: string) {
  const lines: string[] = [];
  for (const builtin of BUILTIN_CHAINS[table]) {
    const w = want.jumps.get(builtin) ?? 0;
    const h = have.jumps.get(builtin) ?? 0;
    const jump = `-j ${chainName(prefix, builtin)}`;
    for (let i = w; i < h; i++) lines.push(`-D ${builtin} ${jump}`);
    if (w > 0 && h === 0) lines.push(`-I ${builtin} 1 ${jump}`);
  }
  return lines;
}

/** The restore text of one table (always rendered; callers decide whether it differs). */
export function renderTable(
  table: IptablesTable,
  want: OwnedTable,
  have: OwnedTable,
  prefix: string,
): string {
  const stale = [...have.chains.keys()].filter((c) => !want.chains.has(c));
  const lines = [
    `*${table}`,
    ...[...want.chains.keys(), ...stale].map((c) => `:${c} - [0:0]`),
    ...jumpLines(table, want, have, prefix),
    ...[...want.chains].flatMap(([c, rules]) => rules.map((r) => `-A ${c} ${r.join(' ')}`)),
    ...stale.map((c) => `-X ${c}`),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** One `iptables-restore --noflush` input taking `observed` to `desired`; '' when equal. */
export function render(desired: OwnedState, observed: OwnedState): string {
  if (desired.prefix !== observed.prefix || desired.family !== observed.family)
    throw new Error('render: desired and observed are for different prefixes or families');
  return [...differences(desired, observed).keys()]
    .map((table) =>
      renderTable(
        table,
        desired.tables.get(table) ?? EMPTY,
        observed.tables.get(table) ?? EMPTY,
        desired.prefix,
      ),
    )
    .join('');
}
