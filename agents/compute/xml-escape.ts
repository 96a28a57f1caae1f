/**
 * XML escaping for the domain and volume renderers (domain.ts, volume-xml.ts). Pure.
 *
 * Invariant: the result holds no `&`, `<`, `>`, `"` or `'` but as an entity, so a value
 * can never end an attribute (written in single quotes) or open an element.
 */
export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&apos;';
    }
  });
}
