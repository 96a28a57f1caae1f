/**
 * The RPC contract between kumo-api and kumo-compute-agent: the instance as the agent must
 * make it (`get_instance`), the instances of a host (`get_host_instances`), what the agent
 * reports (`update_instance`) and the console tail the API asks for (`get_console_output`).
 *
 * Invariants: the agent only reports what it did and what libvirt says; a report ends a
 * task only by naming its task_id, and its power state counts only under the task it was
 * observed in. Every string that reaches a domain XML, a file name or a command passed one
 * of these schemas first.
 */
import { ipText, MAC } from './network.ts';
import {
  arr,
  bool,
  hostname,
  type Infer,
  int,
  nullable,
  obj,
  oneOf,
  optional,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';
import { domainSafeName, powerState, TASK_STATES, VM_STATES } from './servers.ts';
import { InstanceVolume } from './volume.ts';

const imageRef = obj({
  id: uuid(),
  checksum: str({ pattern: /^[0-9a-f]{32}$/, patternName: 'an md5 hex digest' }),
  os_hash_algo: oneOf(['sha512'] as const),
  os_hash_value: str({ pattern: /^[0-9a-f]{128}$/, patternName: 'a sha512 hex digest' }),
  size: int({ min: 0 }),
  disk_format: oneOf(['raw', 'qcow2', 'aki', 'ari', 'ami'] as const),
});
export type InstanceImage = Infer<typeof imageRef>;

export const InstancePort = obj({
  id: uuid(),
  mac_address: str({ pattern: MAC, patternName: 'a MAC address' }),
  network_id: uuid(),
  status: oneOf(['ACTIVE', 'DOWN', 'BUILD', 'ERROR'] as const),
  mtu: int({ min: 68, max: 65535 }),
  fixed_ips: arr(ipText(), { max: 16 }),
});
export type InstancePort = Infer<typeof InstancePort>;

/** One instance as its compute agent must make it. */
export const InstanceSpec = obj({
  id: uuid(),
  /** Sequence number: the domain is `instance-%08x` of it. */
  seq: int({ min: 1, max: 0xffffffff }),
  display_name: domainSafeName(),
  host: hostname(),
  vm_state: oneOf(VM_STATES),
  task_state: nullable(oneOf(TASK_STATES)),
  /** Changes with every new task; echoed back in `update_instance.task_done`. */
  task_id: int({ min: 0 }),
  flavor: obj({
    id: str({ min: 1, max: 255 }),
    name: str({ min: 1, max: 255 }),
    vcpus: int({ min: 1, max: 1024 }),
    ram: int({ min: 1, max: 2 ** 31 - 1 }),
    disk: int({ min: 0, max: 2 ** 31 - 1 }),
  }),
  /** The boot image; for a kernel + ramdisk image, the disk itself may be absent. */
  image: imageRef,
  kernel: nullable(imageRef),
  ramdisk: nullable(imageRef),
  /** `os_command_line` image property, for direct kernel boot. */
  cmdline: nullable(str({ max: 2047 })),
  ports: arr(InstancePort, { max: 16 }),
  created_at: str({ max: 64 }),
  /** The server asked for a config drive (`config_drive` at create). */
  config_drive: bool(),
  /** Its volume attachments, with the connection info only this host is handed. */
  volumes: arr(InstanceVolume, { max: 25 }),
});
export type InstanceSpec = Infer<typeof InstanceSpec>;

export const GetInstanceArgs = obj({ host: hostname(), instance_id: uuid() });
/** `instance: null`: nothing of this id is this host's any more; remove what is left. */
export const GetInstanceResult = obj({ instance: nullable(InstanceSpec) });

export const GetHostInstancesArgs = obj({ host: hostname() });
export const GetHostInstancesResult = obj({ instances: arr(uuid(), { max: 100_000 }) });

/** Milliseconds spent per spawn phase (bench/boot's breakdown). */
export const SpawnTimings = obj({
  image: int({ min: 0 }),
  define: int({ min: 0 }),
  plug: int({ min: 0 }),
  wait_port: int({ min: 0 }),
  boot: int({ min: 0 }),
});
export type SpawnTimings = Infer<typeof SpawnTimings>;

/** The agent tells what it did and what libvirt says; a cast. */
export const UpdateInstanceArgs = obj({
  host: hostname(),
  instance_id: uuid(),
  power_state: powerState(),
  /**
   * The task_id of the spec the agent observed under. The API applies the power state only
   * while that is still the instance's task_id, so a report overtaken by a newer task (the
   * API consumes reports concurrently) cannot move the states back.
   */
  observed_task_id: optional(int({ min: 0 })),
  /** The task this report finishes (its task_id), when it finishes one. */
  task_done: optional(int({ min: 0 })),
  /** The vm_state the finished task leads to. */
  vm_state: optional(oneOf(VM_STATES)),
  /** Set with vm_state error: why. */
  fault: optional(obj({ message: str({ max: 255 }), details: optional(str({ max: 65535 })) })),
  timings: optional(SpawnTimings),
  /** Everything of the instance is gone from the host (after a delete). */
  deleted: optional(bool()),
});
export type UpdateInstanceArgs = Infer<typeof UpdateInstanceArgs>;

/** API → the instance's compute agent (a call): the tail of the serial console log. */
export const ConsoleOutputArgs = obj({
  instance_id: uuid(),
  /** Last lines to return; absent or -1: all (bounded by the agent). */
  length: optional(int({ min: -1, max: 1_000_000 })),
});
/** Console text keeps its newlines and escapes: only its type and size are checked. */
const consoleText = (): Schema<string> => ({
  kind: 'string',
  parse(value, path = '') {
    if (typeof value !== 'string') throw new ValidationError(path, 'must be a string');
    if (value.length > 8 * 1024 * 1024) throw new ValidationError(path, 'is too long');
    return value;
  },
});
export const ConsoleOutputResult = obj({ output: consoleText() });
