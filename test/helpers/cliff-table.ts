/**
 * cliff's tables (the `neutron` and `openstack` CLIs' default output) read back as data: a
 * list's rows keyed by the header, a show's Field/Value pairs.
 *
 * Invariant: it refuses what is not a whole table (after the message a create prints first,
 * a line that is neither a border nor a row, or rows of another width), so a CLI's error
 * text never reads as an empty table.
 */

/** Every row's cells, header first. */
export function tableCells(out: string): string[][] {
  const all = out.split('\n').filter((l) => l !== '');
  const lines = all.slice(
    Math.max(
      0,
      all.findIndex((l) => l.startsWith('+')),
    ),
  );
  const width = lines[0]?.length;
  for (const l of lines) {
    if (!/^[+|].*[+|]$/.test(l) || l.length !== width)
      throw new Error(`not a cliff table:\n${out}`);
  }
  return lines
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
}

/** A list table's rows, keyed by its header. */
export function tableRows(out: string): Record<string, string>[] {
  const [header = [], ...rows] = tableCells(out);
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}

/** A show table (Field | Value) as an object. */
export function showFields(out: string): Record<string, string> {
  return Object.fromEntries(
    tableCells(out)
      .slice(1)
      .map(([k = '', v = '']) => [k, v]),
  );
}
