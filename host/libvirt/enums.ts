/**
 * libvirt's public enums (include/libvirt/*.h) that callers of the client pass or branch
 * on: error numbers, domain states and their reasons, event types, and the flags of the
 * procedures we wrap. Pure constants.
 *
 * Invariant: the numeric values are libvirt's ABI and never change; names are libvirt's
 * without the common prefix, so its documentation applies as written.
 */

/** virErrorNumber: the codes a caller is likely to branch on. */
export const VirErrorNumber = {
  VIR_ERR_OK: 0,
  VIR_ERR_INTERNAL_ERROR: 1,
  VIR_ERR_NO_SUPPORT: 3,
  VIR_ERR_INVALID_ARG: 8,
  VIR_ERR_OPERATION_FAILED: 9,
  VIR_ERR_XML_ERROR: 27,
  VIR_ERR_DOM_EXIST: 28,
  VIR_ERR_OPERATION_DENIED: 29,
  VIR_ERR_XML_DETAIL: 35,
  VIR_ERR_SYSTEM_ERROR: 38,
  VIR_ERR_RPC: 39,
  VIR_ERR_NO_DOMAIN: 42,
  VIR_ERR_AUTH_FAILED: 45,
  VIR_ERR_OPERATION_INVALID: 55,
  VIR_ERR_NO_SECRET: 66,
  VIR_ERR_CONFIG_UNSUPPORTED: 67,
  VIR_ERR_OPERATION_TIMEOUT: 68,
  VIR_ERR_ARGUMENT_UNSUPPORTED: 74,
  VIR_ERR_OPERATION_UNSUPPORTED: 84,
} as const;

/** virSecretUsageType: what a secret's usage element names. */
export const SecretUsageType = { NONE: 0, VOLUME: 1, CEPH: 2, ISCSI: 3, TLS: 4, VTPM: 5 } as const;

/** virConnectListAllSecretsFlags (0 = all). */
export const ListSecretsFlags = {
  EPHEMERAL: 1,
  NO_EPHEMERAL: 2,
  PRIVATE: 4,
  NO_PRIVATE: 8,
} as const;

/** virErrorLevel */
export const VirErrorLevel = { NONE: 0, WARNING: 1, ERROR: 2 } as const;

/** virDomainState (DOMAIN_GET_STATE's state, DOMAIN_GET_INFO's state). */
export const DomainState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;

/** virDomainEventType (lifecycle event's `event`). */
export const DomainEventType = {
  DEFINED: 0,
  UNDEFINED: 1,
  STARTED: 2,
  SUSPENDED: 3,
  RESUMED: 4,
  STOPPED: 5,
  SHUTDOWN: 6,
  PMSUSPENDED: 7,
  CRASHED: 8,
} as const;

export type DomainEventName = keyof typeof DomainEventType;

const eventNames = Object.keys(DomainEventType) as DomainEventName[];

/** The name of a lifecycle event number, or `UNKNOWN` for values newer than this table. */
export function domainEventName(event: number): DomainEventName | 'UNKNOWN' {
  return eventNames[event] ?? 'UNKNOWN';
}

/** virDomainEventID */
export const DomainEventId = { LIFECYCLE: 0 } as const;

/** virDomainDeviceModifyFlags (attach/detach): 0 = CURRENT. */
export const DomainAffect = { CURRENT: 0, LIVE: 1, CONFIG: 2 } as const;

/** virConnectListAllDomainsFlags (a subset). */
export const ListDomainsFlags = {
  ACTIVE: 1,
  INACTIVE: 2,
  PERSISTENT: 4,
  TRANSIENT: 8,
  RUNNING: 16,
  PAUSED: 32,
  SHUTOFF: 64,
} as const;

/** virDomainUndefineFlagsValues (a subset). */
export const UndefineFlags = {
  MANAGED_SAVE: 1,
  SNAPSHOTS_METADATA: 2,
  NVRAM: 4,
  KEEP_NVRAM: 8,
  CHECKPOINTS_METADATA: 16,
} as const;

/** virDomainCreateFlags (createWithFlags): START_PAUSED leaves the vCPUs stopped after start. */
export const DomainCreateFlags = {
  NONE: 0,
  START_PAUSED: 1,
  AUTODESTROY: 2,
  BYPASS_CACHE: 4,
  FORCE_BOOT: 8,
  VALIDATE: 16,
} as const;

/** virDomainDefineFlags: VALIDATE checks the XML against libvirt's domain.rng. */
export const DomainDefineFlags = { VALIDATE: 1 } as const;

/** virDomainSaveRestoreFlags, as managedSave takes them (a subset). */
export const DomainSaveFlags = { BYPASS_CACHE: 1, RUNNING: 2, PAUSED: 4 } as const;

/** virDomainShutdownFlagValues / virDomainRebootFlagValues: 0 lets the driver choose. */
export const DomainShutdownFlags = {
  DEFAULT: 0,
  ACPI_POWER_BTN: 1,
  GUEST_AGENT: 2,
  INITCTL: 4,
  SIGNAL: 8,
  PARAVIRT: 16,
} as const;

/** virDomainPausedReason (the reason of a PAUSED state, a subset). */
export const DomainPausedReason = { UNKNOWN: 0, USER: 1, SAVE: 3, STARTING_UP: 11 } as const;

/** virDomainShutoffReason (the reason of a SHUTOFF state). */
export const DomainShutoffReason = {
  UNKNOWN: 0,
  SHUTDOWN: 1,
  DESTROYED: 2,
  CRASHED: 3,
  MIGRATED: 4,
  SAVED: 5,
  FAILED: 6,
  FROM_SNAPSHOT: 7,
  DAEMON: 8,
} as const;

/** virDomainXMLFlags (a subset). */
export const DomainXmlFlags = { SECURE: 1, INACTIVE: 2, UPDATE_CPU: 4, MIGRATABLE: 8 } as const;
