/**
 * The lists of an agent's RPC answer parsed item by item (contracts/dhcp.ts's
 * get_network_info, contracts/l3.ts's get_router_info): one bad subnet, port, interface,
 * route or floating IP is left out and reported, and the rest is still served.
 *
 * Invariant: a rejected item is named by its own id only when that id is a valid
 * resource id (never free text in a status report), else by its place in its list.
 */
import { isPlainObject, type Schema, ValidationError } from './schema.ts';
import { RESOURCE_ID, type RejectedPart, type ResourceKind } from './status.ts';

/** Any value: a list's item, kept whole for parseParts to parse on its own. */
export const anyItem = (): Schema<unknown> => ({ kind: 'item', parse: (value) => value });

/** A part's id for its report: its own id when it is one, else `<label>-<i>`. */
export const partId = (id: unknown, label: string, i: number): string =>
  typeof id === 'string' && RESOURCE_ID.test(id) ? id : `${label}-${i}`;

export interface PartList {
  /** The list's key in the answer (named in the reason). */
  list: string;
  resource: ResourceKind;
  /** The name of an item's place, `<label>-<i>` (default: `list`). */
  label?: string;
  /** False when the items carry no id of their own (routes). */
  ownIds?: boolean;
}

/** The items of `values` that `schema` accepts; each other one is pushed to `rejected`. */
export function parseParts<T>(
  values: unknown[],
  schema: Schema<T>,
  part: PartList,
  rejected: RejectedPart[],
): T[] {
  const label = part.label ?? part.list;
  return values.flatMap((value, i) => {
    try {
      return [schema.parse(value, `${part.list}[${i}]`)];
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      const own = part.ownIds !== false && isPlainObject(value) ? value.id : undefined;
      const id = partId(own, label, i);
      rejected.push({ resource: part.resource, id, reason: e.message.slice(0, 1024) });
      return [];
    }
  });
}
