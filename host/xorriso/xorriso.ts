/**
 * `xorriso` in its own vocabulary: an ISO 9660 image (Joliet + Rock Ridge) made from a
 * directory, as Nova makes a config drive with genisoimage (`-o … -ldots -allow-lowercase
 * -allow-multidot -l -publisher … -quiet -J -r -V config-2`, here through xorriso's mkisofs
 * emulation), and the reads a test or an observe needs: the files an image holds, its
 * volume id, one file's bytes.
 *
 * Invariants: every path handed to xorriso is absolute and free of NUL and newlines (a
 * relative name starting with `-` would be read as an option; xorriso's own commands are
 * line-based); the volume id and publisher pass a strict pattern; names read back from an
 * image are unquoted from xorriso's quoting and anything else is refused, never guessed.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { CommandRunner } from '../../core/exec.ts';

/** Nova's config drive label (CONFIGDRIVELABEL). */
export const CONFIG_DRIVE_LABEL = 'config-2';

const TIMEOUT_MS = 60_000;
/** ISO 9660 volume ids: up to 32 d-characters (we also allow lower case and `-`, as Nova). */
const VOLUME_ID = /^[A-Za-z0-9_-]{1,32}$/;
/** Publisher ids: up to 128 a-characters; no quotes. */
const PUBLISHER = /^[A-Za-z0-9 _.,:()-]{1,128}$/;

function requirePath(what: string, path: string): string {
  if (!isAbsolute(path) || /[\0\n\r]/.test(path))
    throw new Error(`xorriso: ${what} must be an absolute path, got ${JSON.stringify(path)}`);
  return path;
}

export interface IsoOptions {
  /** The directory whose tree becomes the image's root. */
  sourceDir: string;
  /** The image file to write (created or replaced by xorriso). */
  output: string;
  volumeId?: string;
  publisher: string;
}

/** The argv of Nova's genisoimage call, through `xorriso -as mkisofs`. */
export function mkisofsArgv(o: IsoOptions): string[] {
  const volumeId = o.volumeId ?? CONFIG_DRIVE_LABEL;
  if (!VOLUME_ID.test(volumeId))
    throw new Error(`xorriso: bad volume id ${JSON.stringify(volumeId)}`);
  if (!PUBLISHER.test(o.publisher))
    throw new Error(`xorriso: bad publisher ${JSON.stringify(o.publisher)}`);
  return [
    'xorriso',
    '-as',
    'mkisofs',
    '-o',
    requirePath('output', o.output),
    '-ldots',
    '-allow-lowercase',
    '-allow-multidot',
    '-l',
    '-publisher',
    o.publisher,
    '-quiet',
    '-J',
    '-r',
    '-V',
    volumeId,
    requirePath('source directory', o.sourceDir),
  ];
}

/** Builds the image `o.output` from `o.sourceDir`. */
export async function buildIso(runner: CommandRunner, o: IsoOptions): Promise<void> {
  await runner.run({ argv: mkisofsArgv(o), timeoutMs: TIMEOUT_MS });
}

/** Undoes xorriso's quoting of one name: `'…'`, a `'` inside written `'"'"'`. */
export function unquoteName(quoted: string): string {
  const m = /^'((?:[^']|'"'"')*)'$/.exec(quoted);
  if (!m) throw new Error(`xorriso: unexpected name in output: ${JSON.stringify(quoted)}`);
  return (m[1] as string).replaceAll(`'"'"'`, "'");
}

/** The files (not directories) in the image, as absolute ISO paths, sorted. */
export async function listIsoFiles(runner: CommandRunner, iso: string): Promise<string[]> {
  const { stdout } = await runner.run({
    argv: ['xorriso', '-indev', requirePath('image', iso), '-find', '/', '-type', 'f'],
    timeoutMs: TIMEOUT_MS,
  });
  const lines = stdout.split('\n').filter((l) => l.length > 0);
  return lines.map(unquoteName).sort();
}

/** The image's volume id (from its primary volume descriptor). */
export async function isoVolumeId(runner: CommandRunner, iso: string): Promise<string> {
  const { stdout } = await runner.run({
    argv: ['xorriso', '-indev', requirePath('image', iso), '-pvd_info'],
    timeoutMs: TIMEOUT_MS,
  });
  const m = /^Volume Id\s*:\s?(.*)$/m.exec(stdout);
  if (!m) throw new Error(`xorriso -pvd_info ${iso}: no volume id in the output`);
  return (m[1] as string).trimEnd();
}

/** The bytes of one file of the image (`osirrox -extract` into a private temporary dir). */
export async function readIsoFile(
  runner: CommandRunner,
  iso: string,
  path: string,
): Promise<Buffer> {
  requirePath('image file', path);
  const dir = await mkdtemp(join(tmpdir(), 'kumo-osirrox-'));
  try {
    const out = join(dir, 'file');
    await runner.run({
      argv: ['osirrox', '-indev', requirePath('image', iso), '-extract', path, out],
      timeoutMs: TIMEOUT_MS,
    });
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
