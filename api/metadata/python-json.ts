/**
 * JSON as Nova writes it (Python's json.dumps defaults): `", "` between items, `": "`
 * after keys, every non-ASCII character escaped as \uXXXX, keys in insertion order.
 *
 * Invariant: the output parses back (JSON.parse) to the same value; only the spacing and
 * escapes differ from JSON.stringify.
 */

const asciiOnly = (text: string) =>
  text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function pythonJson(value: unknown): string {
  if (value === null || typeof value !== 'object')
    return asciiOnly(JSON.stringify(value) ?? 'null');
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  const items = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${asciiOnly(JSON.stringify(k))}: ${pythonJson(v)}`);
  return `{${items.join(', ')}}`;
}
