/**
 * The libvirt XML of a volume attachment, in the shape Nova's libvirt driver writes for
 * an iSCSI volume with libvirt's own initiator: the CHAP `<secret>` (uuid = the
 * attachment id, usage iSCSI `kumo-attachment-<attachment id>`, persistent and private)
 * and the network `<disk>` (`<source protocol='iscsi' name='<iqn>/<lun>'>`, the portal,
 * this host's initiator name, `<auth>` naming that secret, virtio target `vdb`…, serial =
 * the volume id); and the reading back of such disks from a domain's XML. Pure.
 *
 * Invariant: `checkVolumeDisk` lets through only values that match the contract's
 * patterns (uuids, `vd[b-z]`, the target IQN, portal, LUN, CHAP user, initiator IQN) or
 * throws a `VolumeDiskError` naming the field, and every value written is escaped anyway,
 * so nothing the API hands over can change the shape of the XML libvirt receives.
 */
import { PermanentError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
import {
  CHAP_USER_LENGTH,
  INITIATOR_IQN,
  type InstanceVolume,
  PORTAL,
} from '../../contracts/volume.ts';
import { xmlEscape as e } from './xml-escape.ts';

/** The usage id of an attachment's CHAP secret: what marks a libvirt secret as ours. */
export const SECRET_USAGE_PREFIX = 'kumo-attachment-';
export const secretUsage = (attachmentId: string) => `${SECRET_USAGE_PREFIX}${attachmentId}`;

/** A volume disk as the domain XML holds it. */
export interface VolumeDisk {
  attachmentId: string;
  volumeId: string;
  device: string;
  targetIqn: string;
  lun: number;
  host: string;
  port: number;
  initiator: string;
  username: string;
}

export class VolumeDiskError extends PermanentError {
  constructor(field: string, problem: string) {
    super(`invalid volume attachment: ${field} ${problem}`);
    this.name = 'VolumeDiskError';
  }
}

const TARGET_IQN = /^iqn\.2010-10\.org\.openstack:volume-[0-9a-f-]{36}$/;
const DEVICE = /^vd[b-z]$/;
const CHAP_USER = new RegExp(`^[A-Za-z0-9]{${CHAP_USER_LENGTH}}$`);

function matching(field: string, v: unknown, re: RegExp): string {
  if (typeof v !== 'string' || !re.test(v))
    throw new VolumeDiskError(field, `must match ${re.source}, got ${JSON.stringify(v)}`);
  return v;
}

function lunOf(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255)
    throw new VolumeDiskError(
      'connection.target_lun',
      `must be an integer in 0..255, got ${String(v)}`,
    );
  return v;
}

/** host:port of a portal; IPv6 stays bracketless in the XML (libvirt's `<host name>`). */
function portalOf(v: unknown): { host: string; port: number } {
  const s = matching('connection.target_portal', v, PORTAL);
  const at = s.lastIndexOf(':');
  const port = Number(s.slice(at + 1));
  if (port < 1 || port > 65535)
    throw new VolumeDiskError('connection.target_portal', `has port ${port} outside 1..65535`);
  return { host: s.slice(0, at).replace(/^\[|\]$/g, ''), port };
}

/** The disk of an `attach` entry, every field checked; the initiator is this host's. */
export function checkVolumeDisk(v: InstanceVolume, initiator: string): VolumeDisk {
  const c = v.connection;
  if (c === null) throw new VolumeDiskError('connection', 'is required to attach');
  return validateVolumeDisk({
    attachmentId: String(v.attachment_id).toLowerCase(),
    volumeId: String(v.volume_id).toLowerCase(),
    device: v.device,
    targetIqn: c.target_iqn,
    lun: c.target_lun,
    ...portalOf(c.target_portal),
    initiator,
    username: c.auth_username,
  });
}

/** A disk's every field checked again (the domain renderer takes only checked disks). */
export function validateVolumeDisk(d: VolumeDisk): VolumeDisk {
  const host = typeof d.host === 'string' && d.host.includes(':') ? `[${d.host}]` : d.host;
  portalOf(`${host}:${d.port}`);
  return {
    attachmentId: matching('attachment_id', d.attachmentId, UUID),
    volumeId: matching('volume_id', d.volumeId, UUID),
    device: matching('device', d.device, DEVICE),
    targetIqn: matching('connection.target_iqn', d.targetIqn, TARGET_IQN),
    lun: lunOf(d.lun),
    host: d.host,
    port: d.port,
    initiator: matching('initiator', d.initiator, INITIATOR_IQN),
    username: matching('connection.auth_username', d.username, CHAP_USER),
  };
}

/**
 * The spec's `attach` entries split: the disks (each checked, the first of each device
 * and volume) and, for every other one, why it cannot be a disk (reported ERROR). One
 * rule for the domain's XML (desired.ts) and the volume plan's statuses (target.ts).
 */
export function attachDisks(
  volumes: readonly InstanceVolume[],
  initiator: string,
): { disks: VolumeDisk[]; problems: Map<string, string> } {
  const disks: VolumeDisk[] = [];
  const problems = new Map<string, string>();
  const seen = new Set<string>();
  for (const v of volumes) {
    if (v.action !== 'attach') continue;
    try {
      const disk = checkVolumeDisk(v, initiator);
      const twice = [v.device, v.volume_id].find((k) => seen.has(k));
      if (twice !== undefined) throw new Error(`${twice} is attached twice`);
      seen.add(v.device).add(v.volume_id);
      disks.push(disk);
    } catch (e) {
      problems.set(v.attachment_id, (e as Error).message);
    }
  }
  return { disks, problems };
}

/** Every disk checked; no device, volume or attachment twice. */
export function validateVolumeDisks(disks: readonly VolumeDisk[]): VolumeDisk[] {
  const seen = new Set<string>();
  return disks.map((d, i) => {
    const ok = validateVolumeDisk(d);
    for (const key of [ok.device, ok.volumeId, ok.attachmentId]) {
      if (seen.has(key)) throw new VolumeDiskError(`volumes[${i}]`, `repeats ${key}`);
      seen.add(key);
    }
    return ok;
  });
}

/**
 * The secret's description names the initiator (so the host) that owns it: a libvirtd
 * shared by several compute agents (the test labs) holds each one's secrets, and a resync
 * prunes only its own (volumes.ts pruneSecrets).
 */
export const secretDescription = (attachmentId: string, initiator: string) =>
  `Kumo volume attachment ${attachmentId} for ${initiator}`;

/** The attachment's CHAP secret (its value is set separately, never written in XML). */
export function renderSecretXml(attachmentId: string, initiator: string): string {
  const id = matching('attachment_id', attachmentId, UUID).toLowerCase();
  const owner = matching('initiator', initiator, INITIATOR_IQN);
  return [
    "<secret ephemeral='no' private='yes'>",
    `  <uuid>${e(id)}</uuid>`,
    `  <description>${e(secretDescription(id, owner))}</description>`,
    "  <usage type='iscsi'>",
    `    <target>${e(secretUsage(id))}</target>`,
    '  </usage>',
    '</secret>',
    '',
  ].join('\n');
}

/** The `<disk>` element, indented by `indent` levels of two spaces. */
export function renderVolumeDisk(d: VolumeDisk, indent = 0): string {
  const p = '  '.repeat(indent);
  return [
    "<disk type='network' device='disk'>",
    "  <driver name='qemu' type='raw' cache='none'/>",
    `  <source protocol='iscsi' name='${e(d.targetIqn)}/${d.lun}'>`,
    `    <host name='${e(d.host)}' port='${d.port}'/>`,
    `    <initiator><iqn name='${e(d.initiator)}'/></initiator>`,
    '  </source>',
    `  <auth username='${e(d.username)}'>`,
    `    <secret type='iscsi' uuid='${e(d.attachmentId)}'/>`,
    '  </auth>',
    `  <target dev='${e(d.device)}' bus='virtio'/>`,
    `  <serial>${e(d.volumeId)}</serial>`,
    '</disk>',
  ]
    .map((l) => `${p}${l}`)
    .join('\n');
}

/** A volume disk found in a domain's XML: its serial (volume id), target and secret. */
export interface FoundVolumeDisk {
  volumeId: string;
  device: string;
  /** The `<auth><secret uuid>`: the attachment id (null: a disk without our secret). */
  secretUuid: string | null;
  /** The element as libvirt wrote it, for detachDevice. */
  xml: string;
}

/** The iSCSI network disks with a uuid serial in a domain XML (ours: what we attach). */
export function findVolumeDisks(domainXml: string): FoundVolumeDisk[] {
  const out: FoundVolumeDisk[] = [];
  for (const m of domainXml.matchAll(/<disk\b[^>]*\btype=["']network["'][^>]*>[\s\S]*?<\/disk>/g)) {
    const xml = m[0];
    if (!/<source\b[^>]*\bprotocol=["']iscsi["']/.test(xml)) continue;
    const serial = /<serial>([^<]*)<\/serial>/.exec(xml)?.[1]?.trim();
    const device = /<target\b[^>]*\bdev=["']([^"']+)["']/.exec(xml)?.[1];
    if (!serial || !UUID.test(serial) || !device) continue;
    const secret = /<secret\b[^>]*\buuid=["']([^"']+)["']/.exec(xml)?.[1] ?? null;
    out.push({
      volumeId: serial.toLowerCase(),
      device,
      secretUuid: secret && UUID.test(secret) ? secret.toLowerCase() : null,
      xml,
    });
  }
  return out;
}

/** What the host has of an instance's volumes. */
export interface ObservedVolumes {
  /** The domain's iSCSI disks (its live XML when it runs, else its config). */
  disks: FoundVolumeDisk[];
  /** Attachment ids whose `kumo-attachment-<id>` secret is defined. */
  secrets: ReadonlySet<string>;
}
