/**
 * Field types of Nova's server create and update bodies beyond names and references
 * (servers.ts): access IPs, counts, Nova's boolean strings, admin passwords, security
 * group references and user data (base64, at most 65535 characters), as
 * nova/api/validation/parameter_types.py defines them.
 *
 * Invariant: each schema accepts exactly what Nova's does (within Kumo's bounds, named in
 * the message) and returns the value in one canonical type, so the routes never see
 * Nova's alternative spellings ("2" for 2, "yes" for true).
 */
import { formatIp, parseIp } from './inet.ts';
import { arr, obj, optional, type Schema, str, ValidationError } from './schema.ts';

/** Strict base64: the standard alphabet, padded, no whitespace. */
export const STRICT_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** accessIPv4 / accessIPv6: one address of that version (Nova's format ipv4 / ipv6),
 * in canonical text as Nova's IPAddress field stores it (`2001:DB8:0::1` → `2001:db8::1`). */
export const accessIp = (version: 4 | 6): Schema<string> => ({
  kind: 'string',
  parse(value, path = '') {
    const text = str({ max: 45 }).parse(value, path);
    const ip = parseIp(text);
    if (ip?.version !== version)
      throw new ValidationError(path, `'${text}' is not a '${version === 4 ? 'ipv4' : 'ipv6'}'`);
    return formatIp(ip.version, ip.value);
  },
});

/** The most servers one create may ask for (Nova's bound is the instances quota). */
export const MAX_COUNT = 100;

/** min_count / max_count: Nova's positive_integer (an integer or its digits), >= 1. */
export const count = (): Schema<number> => ({
  kind: 'integer',
  parse(value, path = '') {
    const n =
      typeof value === 'string' && /^[0-9]{1,9}$/.test(value)
        ? Number(value)
        : typeof value === 'number' && Number.isInteger(value)
          ? value
          : undefined;
    if (n === undefined)
      throw new ValidationError(path, `${JSON.stringify(value)} is not a positive integer`);
    if (n < 1) throw new ValidationError(path, `${n} is less than the minimum of 1`);
    if (n > MAX_COUNT)
      throw new ValidationError(path, `${n} is more than the maximum of ${MAX_COUNT}`);
    return n;
  },
});

const TRUE = ['True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes'];
const FALSE = ['False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no'];

/** Nova's parameter_types.boolean: true/false or one of its strings. */
export const novaBool = (): Schema<boolean> => ({
  kind: 'boolean',
  parse(value, path = '') {
    if (value === true || TRUE.includes(value as string)) return true;
    if (value === false || FALSE.includes(value as string)) return false;
    throw new ValidationError(path, `${JSON.stringify(value)} is not a boolean`);
  },
});

/** adminPass: any one-line text (Nova's admin_password is any string), up to 255. */
export const adminPass = () => str({ max: 255 });

/** security_groups: [{name}], a name or id each (an item without a name is ignored). */
export const SecurityGroupRefs = arr(obj({ name: optional(str({ min: 1, max: 255 })) }), {
  max: 64,
});

/** Nova's bound on user data: 65535 characters of base64 (schemas/servers.py). */
export const MAX_USER_DATA = 65535;

/**
 * user_data: base64 in the standard alphabet, padded, at most 65535 characters. Line
 * breaks and blanks between characters pass, as Nova's lenient decode lets them (`base64`
 * wraps its output); any other character outside the alphabet does not, where Nova's
 * decode would drop it silently. Kept as given, as Nova keeps it.
 */
export const userData = (): Schema<string> => ({
  kind: 'string',
  parse(value, path = '') {
    if (typeof value !== 'string') throw new ValidationError(path, 'must be a string');
    // Control characters shown escaped, as Nova's repr() shows them.
    const shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value).slice(1, -1);
    if (value.length > MAX_USER_DATA)
      throw new ValidationError(
        path,
        `'${shown}' is too long (at most ${MAX_USER_DATA} characters of base64)`,
      );
    if (!STRICT_B64.test(value.replace(/[\t\n\r ]/g, '')))
      throw new ValidationError(path, `'${shown}' is not a 'base64'`);
    return value;
  },
});
