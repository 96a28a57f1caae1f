/**
 * `qemu-img` in its own vocabulary: what an image file is (`info`) and copy-on-write
 * overlays on a base image (`create -b`).
 *
 * Invariants: `info` may be run on untrusted files (images users uploaded), so it runs
 * under the limits Nova uses for that (1 GiB address space, 30 s of CPU: a crafted header
 * cannot exhaust the host), with `--force-share` (a base in use by running guests is only
 * read), and its JSON is validated before anyone trusts a field of it. Paths must be
 * absolute: qemu-img reads a name like `json:{…}` or `nbd:…` as a protocol, and an overlay's
 * backing path is recorded in its header, where a relative one would be resolved against
 * the overlay's directory. An overlay never replaces an existing file (an instance disk
 * holds its guest's data) and is never smaller than its base.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { CommandRunner } from '../../core/exec.ts';

export interface ImageInfo {
  /** qemu's format name, as probed from the file's content: `raw`, `qcow2`, `vmdk`… */
  format: string;
  /** Size of the disk the guest sees, in bytes. */
  virtualSize: number;
  /** The backing file named in the header, as written there. */
  backingFile: string | null;
  /** The external data file named in a qcow2 header. */
  dataFile: string | null;
}

/** Nova's QEMU_IMG_LIMITS (nova/privsep/qemu.py). */
const INFO_LIMITS = ['prlimit', `--as=${1024 ** 3}`, '--cpu=30', '--'];
const INFO_TIMEOUT_MS = 60_000;
const CREATE_TIMEOUT_MS = 60_000;

function requireAbsolute(what: string, path: string) {
  if (!isAbsolute(path) || path.includes('\0'))
    throw new Error(`qemu-img: ${what} must be an absolute path, got ${JSON.stringify(path)}`);
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function optionalString(o: Record<string, unknown>, key: string, path: string): string | null {
  const v = o[key];
  if (v === undefined) return null;
  if (typeof v !== 'string')
    throw new Error(`qemu-img info ${path}: "${key}" is not a string: ${JSON.stringify(v)}`);
  return v;
}

/** Validates `qemu-img info --output=json` of one image (no backing chain). */
export function parseImageInfo(path: string, stdout: string): ImageInfo {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch (e) {
    throw new Error(`qemu-img info ${path}: output is not JSON: ${(e as Error).message}`);
  }
  if (!isRecord(json)) throw new Error(`qemu-img info ${path}: output is not a JSON object`);
  const format = json.format;
  if (typeof format !== 'string' || !/^[a-z0-9_-]{1,32}$/.test(format))
    throw new Error(`qemu-img info ${path}: "format" is missing or invalid`);
  const virtualSize = json['virtual-size'];
  if (typeof virtualSize !== 'number' || !Number.isSafeInteger(virtualSize) || virtualSize < 0)
    throw new Error(`qemu-img info ${path}: "virtual-size" is missing or invalid`);
  const specific = json['format-specific'];
  const data = isRecord(specific) && isRecord(specific.data) ? specific.data : {};
  return {
    format,
    virtualSize,
    backingFile: optionalString(json, 'backing-filename', path),
    dataFile: optionalString(data, 'data-file', path),
  };
}

/** `qemu-img info --output=json --force-share <path>`, under resource limits. */
export async function imgInfo(runner: CommandRunner, path: string): Promise<ImageInfo> {
  requireAbsolute('the image', path);
  const argv = [...INFO_LIMITS, 'qemu-img', 'info', '--output=json', '--force-share', path];
  const { stdout } = await runner.run({ argv, timeoutMs: INFO_TIMEOUT_MS });
  return parseImageInfo(path, stdout);
}

/**
 * `qemu-img create -f qcow2 -F <baseFormat> -b <base> <path> [size]`: a copy-on-write disk
 * on `base`, as big as the base unless `sizeBytes` says bigger.
 */
export async function createOverlay(
  runner: CommandRunner,
  o: { base: string; baseFormat: 'qcow2' | 'raw'; path: string; sizeBytes?: number },
): Promise<void> {
  requireAbsolute('the base image', o.base);
  requireAbsolute('the overlay', o.path);
  if (o.baseFormat !== 'qcow2' && o.baseFormat !== 'raw')
    throw new Error(`qemu-img: base format must be qcow2 or raw, got ${String(o.baseFormat)}`);
  const size = o.sizeBytes;
  if (size !== undefined) {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new Error(`qemu-img: overlay size must be a positive integer of bytes, got ${size}`);
    const base = await imgInfo(runner, o.base);
    if (size < base.virtualSize)
      throw new Error(
        `qemu-img: overlay ${o.path} of ${size} bytes would be smaller than its base ${o.base} (${base.virtualSize} bytes): a disk cannot shrink below its image`,
      );
  }
  if (await stat(o.path).catch(() => undefined))
    throw new Error(`qemu-img: overlay ${o.path} already exists; it is never overwritten`);
  const argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', o.baseFormat, '-b', o.base];
  argv.push(o.path, ...(size === undefined ? [] : [String(size)]));
  await runner.run({ argv, timeoutMs: CREATE_TIMEOUT_MS });
}
