/**
 * What may reach tgtadm: every argument checked against the shapes of contracts/volume.ts
 * before any argv is built, so a bad value is a TgtArgumentError naming the field and
 * nothing runs.
 *
 * Invariants: a target name is exactly `targetIqn(<lowercase uuid>)`; CHAP users and secrets
 * are Cinder's fixed-length [A-Za-z0-9]; initiator names match INITIATOR_IQN; a backing store
 * is an absolute path of [A-Za-z0-9._+@/-] without a `..` segment (tgtadm joins its
 * parameters with commas and `=`, so neither may appear); tids are 1…2^31-1 and LUNs 1…255
 * (LUN 0 is tgt's own controller); the control port is 0 (tgtd's default socket) … 32767 (tgt's limit).
 */
import { ValidationError } from '../../contracts/schema.ts';
import { chapSecret, chapUser, IQN_PREFIX, initiatorIqn, PORTAL } from '../../contracts/volume.ts';

/** A tgtadm argument refused before anything ran. */
export class TgtArgumentError extends ValidationError {
  constructor(field: string, reason: string) {
    super(field, reason);
    this.name = 'TgtArgumentError';
  }
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const TARGET_IQN = new RegExp(`^${IQN_PREFIX.replaceAll('.', '\\.')}volume-${UUID}$`);
const PATH = /^\/[A-Za-z0-9._+@/-]{1,4000}$/;
const MAX_TID = 2 ** 31 - 1;

function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 60)) : String(value);
}

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    throw new TgtArgumentError(field, `must be an integer ${min}…${max}, not ${shown(value)}`);
  return value;
}

/** Re-raises a contract ValidationError as a TgtArgumentError on `field`. */
function viaContract<T>(field: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof ValidationError) throw new TgtArgumentError(field, e.reason);
    throw e;
  }
}

/** tgtd and tgtadm refuse a control port above 32767 ("out of range"). */
export const checkControlPort = (port: unknown) => integer('control_port', port, 0, 32_767);
export const checkTid = (tid: unknown) => integer('tid', tid, 1, MAX_TID);
export const checkLun = (lun: unknown) => integer('lun', lun, 1, 255);

export function checkTargetIqn(iqn: unknown): string {
  if (typeof iqn !== 'string' || !TARGET_IQN.test(iqn))
    throw new TgtArgumentError(
      'targetname',
      `must be ${IQN_PREFIX}volume-<uuid>, not ${shown(iqn)}`,
    );
  return iqn;
}

export const checkUser = (user: unknown) => viaContract('user', () => chapUser().parse(user));
export const checkSecret = (secret: unknown) =>
  viaContract('password', () => chapSecret().parse(secret));
export const checkInitiator = (name: unknown) =>
  viaContract('initiator_name', () => initiatorIqn().parse(name));

/** An absolute path tgtd may open or write (a backing store, tgtd's pid file). */
export function checkPath(field: string, path: unknown): string {
  const ok = typeof path === 'string' && PATH.test(path) && !path.split('/').includes('..');
  if (!ok)
    throw new TgtArgumentError(
      field,
      `must be an absolute path of [A-Za-z0-9._+@/-] without "..", not ${shown(path)}`,
    );
  return path;
}

export const checkBackingStore = (path: unknown) => checkPath('backing_store', path);

/** An iSCSI portal tgtd listens on: `PORTAL` of contracts/volume.ts, port 1…65535. */
export function checkPortal(portal: unknown): string {
  const port = typeof portal === 'string' ? Number(portal.slice(portal.lastIndexOf(':') + 1)) : 0;
  if (typeof portal !== 'string' || !PORTAL.test(portal) || port < 1 || port > 65_535)
    throw new TgtArgumentError(
      'portal',
      `must be <ipv4>:<port> or [<ipv6>]:<port>, not ${shown(portal)}`,
    );
  return portal;
}
