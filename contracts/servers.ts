/**
 * Servers: the Nova v2.1 request shapes kumo-api accepts, the states it keeps and the
 * bounds a libvirt domain sets (the agent RPC is in instances.ts).
 *
 * Invariants: the API is the only writer of vm_state/task_state; the agent only reports
 * what it did (`update_instance`) and what libvirt says (power_state). A task carries a
 * `task_id`, and the API clears a task only when the agent reports that very id done, so
 * a report that arrives late can never end a newer task. Every string that reaches a
 * domain XML, a file name or a command passed one of these schemas first.
 */
import { ipText } from './network.ts';
import {
  arr,
  type Infer,
  int,
  isPlainObject,
  nullable,
  obj,
  oneOf,
  optional,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';
import {
  accessIp,
  adminPass,
  count,
  novaBool,
  SecurityGroupRefs,
  userData,
} from './server-fields.ts';

/* ----------------------------------------------------------------- states */

/** Nova's vm_states that Kumo uses. */
export const VM_STATES = [
  'building',
  'active',
  'stopped',
  'paused',
  'suspended',
  'error',
  'soft-delete',
  'deleted',
] as const;
export type VmState = (typeof VM_STATES)[number];

/** Nova's task_states that Kumo uses (`null`: no task). */
export const TASK_STATES = [
  'scheduling',
  'spawning',
  'rebooting',
  'rebooting_hard',
  'powering-off',
  'powering-on',
  'pausing',
  'unpausing',
  'suspending',
  'resuming',
  'rebuilding',
  'soft-deleting',
  'restoring',
  'deleting',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** Nova's power_state numbers (nova/compute/power_state.py). */
export const POWER_STATE = {
  NOSTATE: 0,
  RUNNING: 1,
  PAUSED: 3,
  SHUTDOWN: 4,
  CRASHED: 6,
  SUSPENDED: 7,
} as const;
export type PowerState = (typeof POWER_STATE)[keyof typeof POWER_STATE];
const POWER_VALUES: readonly number[] = Object.values(POWER_STATE);
/** A Nova power_state number. */
export const powerState = (): Schema<PowerState> => ({
  kind: 'integer',
  parse(value, path = '') {
    if (typeof value !== 'number' || !POWER_VALUES.includes(value))
      throw new ValidationError(path, `must be one of ${POWER_VALUES.join(', ')}`);
    return value as PowerState;
  },
});

/** Nova's API status from vm_state and task_state (nova/api/openstack/common.py). */
export function serverStatus(vm: VmState, task: TaskState | null): string {
  if (vm === 'active' && task === 'rebooting') return 'REBOOT';
  if (vm === 'active' && task === 'rebooting_hard') return 'HARD_REBOOT';
  if (task === 'rebuilding' && ['active', 'stopped', 'error'].includes(vm)) return 'REBUILD';
  const map: Record<VmState, string> = {
    building: 'BUILD',
    active: 'ACTIVE',
    stopped: 'SHUTOFF',
    paused: 'PAUSED',
    suspended: 'SUSPENDED',
    error: 'ERROR',
    'soft-delete': 'SOFT_DELETED',
    deleted: 'DELETED',
  };
  return map[vm];
}

/** Actions of `POST /servers/{id}/action`, with the task they start. */
export const SERVER_ACTIONS = {
  reboot: null,
  'os-stop': 'powering-off',
  'os-start': 'powering-on',
  pause: 'pausing',
  unpause: 'unpausing',
  suspend: 'suspending',
  resume: 'resuming',
  rebuild: 'rebuilding',
  restore: 'restoring',
  forceDelete: 'deleting',
  lock: null,
  unlock: null,
  addSecurityGroup: null,
  removeSecurityGroup: null,
  'os-getConsoleOutput': null,
} as const satisfies Record<string, TaskState | null>;
export type ServerAction = keyof typeof SERVER_ACTIONS;

/* -------------------------------------------------------- domain bounds */

/**
 * What a Kumo libvirt domain takes (agents/compute/domain.ts refuses anything else): the
 * API refuses a server beyond these at create, so every spec it hands out can be built.
 * vcpus and ram (MiB) are inclusive ranges; `text` is the longest name the domain XML
 * carries (display name, flavor name); `cmdline` is x86's COMMAND_LINE_SIZE minus its NUL.
 */
export const DOMAIN_LIMITS = {
  vcpus: { min: 1, max: 512 },
  ramMb: { min: 16, max: 16 * 1024 * 1024 },
  text: 255,
  cmdline: 2047,
} as const;

/** C0 controls, DEL and C1 controls: never in a name or a command line of a domain. */
export const DOMAIN_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `s` cannot be domain text (a name, a command line), or undefined when it can. */
export function domainTextProblem(s: string): string | undefined {
  if (DOMAIN_CONTROL.test(s)) return 'must not contain control characters';
  if (!s.isWellFormed()) return 'must be well-formed Unicode (no lone surrogates)';
  // Not XML characters: no escape can write them into a libvirt domain.
  if (/[\ufffe\uffff]/.test(s)) return 'must not contain U+FFFE or U+FFFF';
  return undefined;
}

/* ------------------------------------------------------------- requests */

const MAX_METADATA = 128;
const metaKey = () => str({ min: 1, max: 255 });
const metaValue = () => str({ max: 255 });

/** Nova's metadata: up to 128 string → string pairs. */
export const Metadata: Schema<Record<string, string>> = {
  kind: 'object',
  parse(value, path = '') {
    if (!isPlainObject(value)) throw new ValidationError(path, 'must be an object');
    const entries = Object.entries(value);
    if (entries.length > MAX_METADATA)
      throw new ValidationError(path, `must have at most ${MAX_METADATA} items`);
    // fromEntries defines own properties, so a `__proto__` key stays a key.
    return Object.fromEntries(
      entries.map(([k, v]) => [
        metaKey().parse(k, `${path}.${k}`),
        metaValue().parse(v, `${path}.${k}`),
      ]),
    );
  },
};

/** A requested network: `{uuid}` (a new port on it) or `{port}` (an existing port). */
export const NetworkRequest = obj({
  uuid: optional(uuid()),
  port: optional(uuid()),
  fixed_ip: optional(ipText()),
});
export type NetworkRequest = Infer<typeof NetworkRequest>;

/** `networks`: a list, or Nova's "auto" / "none" (microversion 2.37). */
export const Networks: Schema<NetworkRequest[] | 'auto' | 'none'> = {
  kind: 'array',
  parse(value, path = '') {
    if (value === 'auto' || value === 'none') return value;
    const list = arr(NetworkRequest, { max: 16 }).parse(value, path);
    list.forEach((n, i) => {
      if ((n.uuid === undefined) === (n.port === undefined))
        throw new ValidationError(`${path}[${i}]`, 'must name exactly one of uuid or port');
      if (n.port !== undefined && n.fixed_ip !== undefined)
        throw new ValidationError(`${path}[${i}].fixed_ip`, 'cannot be given with port');
    });
    return list;
  },
};

/** A Nova ref: an id, or a URL whose last path segment is the id. */
export const ref = () =>
  str({
    min: 1,
    max: 2048,
    pattern: /^[^\s'"<>;]+$/,
    patternName: 'an id or a URL',
  });
export const refId = (r: string): string => {
  const tail = r.includes('/') ? (r.split('/').pop() ?? '') : r;
  return decodeURIComponent(tail);
};

/** A name the domain can carry: 1-255 characters, no outer spaces, no controls (C0/C1),
 * well-formed; server and flavor names both end up in a domain's metadata. */
export const domainSafeName = (): Schema<string> => {
  const base = str({
    min: 1,
    max: DOMAIN_LIMITS.text,
    pattern: /^(?! )[\s\S]*(?<! )$/,
    patternName: 'a name without leading or trailing spaces',
  });
  return {
    kind: 'string',
    parse(value, path = '') {
      const name = base.parse(value, path);
      const problem = domainTextProblem(name);
      if (problem) throw new ValidationError(path, problem);
      return name;
    },
  };
};

/** Nova's unprintable characters: categories C (Cc Cf Cs Co Cn), Zl, Zp, and, as Nova
 * builds its character class from U+0000-U+FFFE only, everything beyond the BMP. */
const UNPRINTABLE = /[\p{C}\p{Zl}\p{Zp}\u{10000}-\u{10FFFF}]/u;
const OUTER_SPACE = /^\p{Zs}|\p{Zs}$/u;

/** Why `s` breaks Nova's name rule (parameter_types.name), or undefined when it keeps it. */
export function novaNameProblem(s: string): string | undefined {
  const bad = UNPRINTABLE.exec(s);
  if (bad) {
    const cp = bad[0].codePointAt(0) ?? 0;
    const code = cp.toString(16).toUpperCase().padStart(4, '0');
    const at = [...s.slice(0, bad.index)].length + 1;
    const where =
      cp > 0xffff ? ' (Nova takes characters of the Basic Multilingual Plane only)' : '';
    return `must be printable characters; U+${code} (character ${at}) is not printable${where}`;
  }
  if (OUTER_SPACE.test(s)) return 'must not start or end with whitespace';
  return undefined;
}

/**
 * Nova's `name` of a request (servers, flavors): 1-255 printable characters without leading
 * or trailing whitespace (Zs), and a name a domain can carry. Being within the BMP, its
 * length in characters is its length in UTF-16 units, which the compute agent counts.
 */
export const novaName = (): Schema<string> => {
  const base = domainSafeName();
  return {
    kind: 'string',
    parse(value, path = '') {
      const name = base.parse(value, path);
      const problem = novaNameProblem(name);
      if (problem) throw new ValidationError(path, problem);
      return name;
    },
  };
};

export const ServerCreate = obj({
  server: obj({
    name: novaName(),
    flavorRef: ref(),
    imageRef: ref(),
    networks: optional(Networks),
    metadata: optional(Metadata),
    min_count: optional(count()),
    max_count: optional(count()),
    return_reservation_id: optional(novaBool()),
    accessIPv4: optional(accessIp(4)),
    accessIPv6: optional(accessIp(6)),
    adminPass: optional(adminPass()),
    availability_zone: optional(str({ max: 255 })),
    security_groups: optional(SecurityGroupRefs),
    config_drive: optional(novaBool()),
    // Nova's parameter_types.name; the key pair itself is looked up at create.
    key_name: optional(novaName()),
    user_data: optional(userData()),
    'OS-DCF:diskConfig': optional(oneOf(['AUTO', 'MANUAL'] as const)),
  }),
});
export type ServerCreate = Infer<typeof ServerCreate>['server'];

/** PUT /servers/{id}: Nova 2.1's base_update (diskConfig accepted, Kumo's is MANUAL). */
export const ServerUpdate = obj({
  server: obj({
    name: optional(novaName()),
    accessIPv4: optional(accessIp(4)),
    accessIPv6: optional(accessIp(6)),
    'OS-DCF:diskConfig': optional(oneOf(['AUTO', 'MANUAL'] as const)),
  }),
});
export type ServerUpdate = Infer<typeof ServerUpdate>['server'];

export const RebootAction = obj({ reboot: obj({ type: oneOf(['SOFT', 'HARD'] as const) }) });
export const ConsoleOutputAction = obj({
  'os-getConsoleOutput': obj({ length: optional(nullable(int({ min: -1, max: 1_000_000 }))) }),
});
