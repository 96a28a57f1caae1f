/**
 * The volume agent's settings, compiled once from [DEFAULT] and [volume] and checked at
 * start: everything the rest of the agent needs from the configuration is here.
 *
 * Invariants: the config compiler already validated each key (volume group name, paths,
 * ports, choices), so the names derived from them are safe for argv; the file backend's
 * directory exists (made 0700 when absent) and is a path tgt accepts for a backing store
 * (host/tgt/args.ts: no space, comma, `=` …) before the agent serves anything, else the
 * agent refuses to start naming `[volume] volumes_dir` — not every export failing later.
 */
import { mkdir, stat } from 'node:fs/promises';
import { type VolumeBackend, volumeName } from '../../contracts/volume.ts';
import type { KumoConfig } from '../../core/config.ts';
import { checkBackingStore, TgtArgumentError } from '../../host/tgt/args.ts';

const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export interface VolumeSettings {
  host: string;
  driver: VolumeBackend;
  /** The file backend's images (`[volume] volumes_dir`, else <state_path>/volumes). */
  volumesDir: string;
  vg: string;
  lvmType: 'default' | 'thin';
  activation: boolean;
  volumeClear: 'zero' | 'none';
  /** `ip:port` handed to compute hosts (target_ip_address:target_port). */
  portal: string;
  tgtControlPort: number;
}

export function volumeSettings(config: KumoConfig): VolumeSettings {
  const v = config.volume;
  return {
    host: config.DEFAULT.host,
    driver: v.volume_driver,
    volumesDir: v.volumes_dir ?? `${config.DEFAULT.state_path}/volume/files`,
    vg: v.volume_group,
    lvmType: v.lvm_type,
    activation: v.lvm_activation,
    volumeClear: v.volume_clear,
    portal: `${v.target_ip_address}:${v.target_port}`,
    tgtControlPort: v.tgt_control_port,
  };
}

/** The thin pool of a thin-provisioned volume group (Cinder's `<vg>-pool`). */
export const thinPoolOf = (s: VolumeSettings) => `${s.vg}-pool`;

/** A path tgt would refuse as a backing store (a space, a comma …) stops the agent at start. */
function checkServable(dir: string): void {
  try {
    checkBackingStore(`${dir}/${volumeName(NIL_UUID)}`);
  } catch (e) {
    if (!(e instanceof TgtArgumentError)) throw e;
    const why = `cannot hold volumes tgt can export: a backing store ${e.reason}`;
    throw new Error(`[volume] volumes_dir ${JSON.stringify(dir)} ${why}`);
  }
}

/** Refuses to start (naming the key) when the file backend's directory is unusable. */
export async function checkSettings(s: VolumeSettings): Promise<void> {
  if (s.driver !== 'file') return;
  checkServable(s.volumesDir);
  try {
    await mkdir(s.volumesDir, { recursive: true, mode: 0o700 });
    const st = await stat(s.volumesDir);
    if (!st.isDirectory()) throw new Error('not a directory');
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`[volume] volumes_dir ${s.volumesDir} is not usable: ${why}`);
  }
}
