/**
 * Names of network namespaces and devices on a host (ARCHITECTURE §6): `qdhcp-<network>`,
 * `tap` + the first 11 characters of the port id.
 *
 * Invariant: a name that passes these checks is a single argv word and a single `ip -batch`
 * token: no spaces, newlines, quotes, slashes or leading `-`; device names fit IFNAMSIZ
 * (15 characters). Every builder in host/ip checks its names before producing a command.
 */

/** The same rule core/exec applies to `CommandSpec.netns`. */
const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const DEVICE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class InvalidNameError extends Error {
  readonly field: string;
  constructor(field: string, value: unknown, rule: string) {
    super(`invalid ${field} ${JSON.stringify(value)}: ${rule}`);
    this.name = 'InvalidNameError';
    this.field = field;
  }
}

export function assertNetnsName(name: string, field = 'netns name'): string {
  if (typeof name !== 'string' || !NETNS.test(name))
    throw new InvalidNameError(
      field,
      name,
      'must be 1-63 of [A-Za-z0-9_.-], not starting with _.-',
    );
  return name;
}

export function assertDeviceName(name: string, field = 'device name'): string {
  if (typeof name !== 'string' || !DEVICE.test(name))
    throw new InvalidNameError(
      field,
      name,
      'must be 1-15 of [A-Za-z0-9_.-], not starting with _.-',
    );
  return name;
}

function assertUuid(id: string, field: string): string {
  if (typeof id !== 'string' || !UUID.test(id))
    throw new InvalidNameError(field, id, 'must be a lowercase UUID');
  return id;
}

/** `qdhcp-<network id>`: the namespace of a network's DHCP server. */
export function dhcpNamespace(networkId: string): string {
  return `qdhcp-${assertUuid(networkId, 'network id')}`;
}

/** `qrouter-<router id>`. */
export function routerNamespace(routerId: string): string {
  return `qrouter-${assertUuid(routerId, 'router id')}`;
}

/** `qlbaas-<pool id>`: the namespace of a pool's VIP and haproxy. */
export function poolNamespace(poolId: string): string {
  return `qlbaas-${assertUuid(poolId, 'pool id')}`;
}

/** `<prefix>` + the first 11 characters of the port id (`tap`, `qr-`, `qg-`). */
export function portDevice(prefix: 'tap' | 'qr-' | 'qg-', portId: string): string {
  return assertDeviceName(`${prefix}${assertUuid(portId, 'port id').slice(0, 11)}`);
}
