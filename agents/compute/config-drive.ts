/**
 * The config drive of an instance: its `openstack/…` and `ec2/…` files, as the API answers
 * get_config_drive, built into `<instance dir>/disk.config`, an ISO 9660 image labelled
 * `config-2` (host/xorriso), which the domain carries as a read-only cdrom (Nova's
 * configdrive with the libvirt driver).
 *
 * Invariants:
 * - a file path is written only once it passed the contract's pattern and this module's
 *   own check (relative, no `.` or `..` segment, no path that is both a file and another's
 *   directory, none twice), and its bytes only once they are strict base64: nothing the
 *   API sends can name a file outside the staging tree;
 * - the image is built beside its final name and renamed into place, readable by
 *   libvirt's qemu user (0644) like the instance's other files, so the domain sees the old
 *   image or the new one, never a torn one; the staging tree is removed whatever happens;
 * - it is written only into a directory whose owner marker names this host.
 */
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PermanentError } from '../../contracts/errors.ts';
import { CONFIG_DRIVE_PATH, type ConfigDriveFile } from '../../contracts/metadata.ts';
import { STRICT_B64 } from '../../contracts/server-fields.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { buildIso } from '../../host/xorriso/xorriso.ts';
import { type InstancePaths, ownerText } from './desired.ts';
import { ForeignDirectoryError, readOwner } from './instance-dir.ts';

/** The image's publisher id (Nova writes `OpenStack Compute <version>`). */
export const CONFIG_DRIVE_PUBLISHER = 'Kumo Compute';

/** The API's files of the drive cannot be written: permanent (it would answer the same). */
export class ConfigDriveError extends PermanentError {
  constructor(message: string) {
    super(`config drive: ${message}`);
    this.name = 'ConfigDriveError';
  }
}

export interface DriveFile {
  /** Relative to the image's root, e.g. `openstack/latest/meta_data.json`. */
  path: string;
  bytes: Buffer;
}

function checkedPath(path: string): string {
  const segments = path.split('/');
  if (!CONFIG_DRIVE_PATH.test(path) || segments.some((s) => s === '.' || s === '..'))
    throw new ConfigDriveError(`refused file path ${JSON.stringify(path)}`);
  return path;
}

function decoded(path: string, content: string): Buffer {
  if (!STRICT_B64.test(content)) throw new ConfigDriveError(`content of ${path} is not base64`);
  return Buffer.from(content, 'base64');
}

/** The API's files, validated (see the module invariants); throws ConfigDriveError. */
export function driveFiles(files: readonly ConfigDriveFile[]): DriveFile[] {
  const paths = new Set<string>();
  const out = files.map((f) => {
    const path = checkedPath(f.path);
    if (paths.has(path)) throw new ConfigDriveError(`file ${path} is given twice`);
    paths.add(path);
    return { path, bytes: decoded(path, f.content_base64) };
  });
  for (const path of paths) {
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      if (paths.has(parent)) throw new ConfigDriveError(`${parent} is a file and a directory`);
    }
  }
  return out;
}

/** Writes the files under `root` (a fresh, private directory). */
async function writeTree(root: string, files: readonly DriveFile[]): Promise<void> {
  for (const f of files) {
    const target = join(root, f.path);
    if (!target.startsWith(`${root}/`)) throw new ConfigDriveError(`refused file path ${f.path}`);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(target, f.bytes, { mode: 0o644 });
  }
}

export interface ConfigDriveDeps {
  runner: CommandRunner;
  /** get_config_drive: the drive's files, or null when the API has none for this host. */
  configDrive(instanceId: string): Promise<ConfigDriveFile[] | null>;
}

/** Builds `paths.configDrive` from the API's files for `instanceId` (see the invariants). */
export async function buildConfigDrive(
  deps: ConfigDriveDeps,
  step: { instanceId: string; paths: InstancePaths; host: string },
): Promise<void> {
  const { paths, host } = step;
  const owner = await readOwner(paths.dir);
  if (owner !== host)
    throw new ForeignDirectoryError(
      `instance directory ${paths.dir} belongs to ${ownerText(owner)}`,
    );
  const answer = await deps.configDrive(step.instanceId);
  if (answer === null)
    throw new ConfigDriveError('the API has none for this instance on this host');
  const files = driveFiles(answer);
  const staging = join(paths.dir, '.config-drive.part');
  const part = `${paths.configDrive}.part`;
  await rm(staging, { recursive: true, force: true });
  await rm(part, { force: true });
  try {
    await mkdir(staging, { mode: 0o700 });
    await writeTree(staging, files);
    await buildIso(deps.runner, {
      sourceDir: staging,
      output: part,
      publisher: CONFIG_DRIVE_PUBLISHER,
    });
    await chmod(part, 0o644);
    await rename(part, paths.configDrive);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(part, { force: true });
  }
}
