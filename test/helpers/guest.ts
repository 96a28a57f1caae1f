/**
 * The tiny test guest of HOST-LAB.md ("A guest that really boots"): Debian's cloud kernel
 * (`/boot/vmlinuz-*-cloud-amd64`, package linux-image-cloud-amd64) and an initramfs we
 * build from busybox-static, the kernel's virtio (and, when present, cdrom) modules, and
 * the scripts of test/helpers/guest-init.ts (/init, udhcpc's event script: what the guest
 * does and prints), test/helpers/metadata-guest.ts (its metadata fetches) and
 * test/helpers/seed-guest.ts (the seed walkthrough's name server and listings).
 *
 * The kernel and initramfs are copied into a cache directory keyed by kernel version and a
 * hash of everything that goes into the initramfs, readable by libvirt's qemu user. Tools:
 * `cpio`, `gzip` (and `xz`/`zstd` for compressed modules), run with argv, never a shell.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { createCommandRunner } from '../../core/exec.ts';
import {
  CDROM_MODULES,
  GUEST_MODULES,
  GUEST_UP_MARKER,
  INIT,
  PING_MARKER,
  UDHCPC,
} from './guest-init.ts';
import { METADATA_SCRIPT } from './metadata-guest.ts';
import { SEED_SCRIPT } from './seed-guest.ts';

export { CDROM_MODULES, GUEST_MODULES, GUEST_UP_MARKER, PING_MARKER };

export interface TestGuest {
  kernel: string;
  initrd: string;
  /** Base command line; append `kumo.nodhcp` to skip DHCP (a guest without a NIC). */
  cmdline: string;
  kernelVersion: string;
}

const BUSYBOX = '/bin/busybox';
const PACKAGES = 'apt-get install -y linux-image-cloud-amd64 busybox-static cpio';

/** The newest `/boot/vmlinuz-*-cloud-amd64` and its version, or a reason why there is none. */
export function findCloudKernel(): { kernel: string; version: string } {
  const found = existsSync('/boot')
    ? readdirSync('/boot')
        .filter((f) => /^vmlinuz-.+-cloud-amd64$/.test(f))
        .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    : [];
  const newest = found.at(-1);
  if (newest === undefined) {
    throw new Error(`no /boot/vmlinuz-*-cloud-amd64: the test guest needs it (${PACKAGES})`);
  }
  return { kernel: join('/boot', newest), version: newest.slice('vmlinuz-'.length) };
}

/** Module name → path of its file under /lib/modules/<version>, from modules.dep. */
function modulePaths(version: string): Map<string, string> {
  const dir = join('/lib/modules', version);
  const dep = join(dir, 'modules.dep');
  if (!existsSync(dep)) throw new Error(`no ${dep}: install the kernel's package (${PACKAGES})`);
  const out = new Map<string, string>();
  for (const line of readFileSync(dep, 'utf8').split('\n')) {
    const file = line.split(':')[0];
    if (!file) continue;
    const name = basename(file)
      .replace(/\.ko(\.(xz|zst|gz))?$/, '')
      .replaceAll('-', '_');
    out.set(name, join(dir, file));
  }
  return out;
}

function builtins(version: string): Set<string> {
  const file = join('/lib/modules', version, 'modules.builtin');
  if (!existsSync(file)) return new Set();
  return new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => basename(l).replace(/\.ko$/, '').replaceAll('-', '_')),
  );
}

function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const ent of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const p = join(dir, ent.name);
      out.push(relative(root, p));
      if (ent.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

let pending: Promise<TestGuest> | undefined;

/**
 * Builds (or finds in the cache) the test guest's kernel + initramfs.
 * `cacheDir` defaults to `$TMPDIR/kumo-test-guest`.
 */
export function buildTestGuest(opts: { cacheDir?: string } = {}): Promise<TestGuest> {
  if (opts.cacheDir !== undefined) return build(opts.cacheDir);
  pending ??= build(join(tmpdir(), 'kumo-test-guest')).catch((e: unknown) => {
    pending = undefined;
    throw e;
  });
  return pending;
}

async function build(cacheRoot: string): Promise<TestGuest> {
  const { kernel: bootKernel, version } = findCloudKernel();
  if (!existsSync(BUSYBOX)) throw new Error(`no ${BUSYBOX}: install busybox-static (${PACKAGES})`);
  const paths = modulePaths(version);
  const builtIn = builtins(version);
  const modules: { name: string; path: string }[] = [];
  for (const name of GUEST_MODULES) {
    const path = paths.get(name);
    if (path !== undefined) modules.push({ name, path });
    else if (!builtIn.has(name)) throw new Error(`kernel ${version} has no module ${name}`);
  }
  for (const name of CDROM_MODULES) {
    const path = paths.get(name);
    if (path !== undefined) modules.push({ name, path });
  }

  const hash = createHash('sha256')
    .update(INIT)
    .update(UDHCPC)
    .update(METADATA_SCRIPT)
    .update(SEED_SCRIPT);
  for (const f of [BUSYBOX, bootKernel, ...modules.map((m) => m.path)]) {
    const st = statSync(f);
    hash.update(`${f}\0${st.size}\0${st.mtimeMs}\0`);
  }
  const key = `${version}-${hash.digest('hex').slice(0, 12)}`;
  const dir = join(cacheRoot, key);
  const result: TestGuest = {
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    cmdline: 'console=ttyS0 quiet panic=-1',
    kernelVersion: version,
  };
  if (existsSync(result.kernel) && existsSync(result.initrd)) return result;

  // qemu runs as libvirt-qemu: every directory on the way must be world-traversable
  mkdirSync(cacheRoot, { recursive: true, mode: 0o755 });
  chmodSync(cacheRoot, 0o755);
  const work = mkdtempSync(join(cacheRoot, `.build-${key}-`));
  const run = createCommandRunner({ defaultTimeoutMs: 120_000 });
  try {
    const root = join(work, 'root');
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'etc']) {
      mkdirSync(join(root, d), { recursive: true });
    }
    mkdirSync(join(root, 'lib/modules'), { recursive: true });
    copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
    chmodSync(join(root, 'bin/busybox'), 0o755);
    symlinkSync('busybox', join(root, 'bin/sh'));
    writeFileSync(join(root, 'init'), INIT, { mode: 0o755 });
    writeFileSync(join(root, 'udhcpc.sh'), UDHCPC, { mode: 0o755 });
    writeFileSync(join(root, 'metadata.sh'), METADATA_SCRIPT, { mode: 0o755 });
    writeFileSync(join(root, 'seed.sh'), SEED_SCRIPT, { mode: 0o755 });
    for (const m of modules) {
      const dest = join(root, 'lib/modules', `${m.name}.ko`);
      const decompress = m.path.endsWith('.xz')
        ? 'xz'
        : m.path.endsWith('.zst')
          ? 'zstd'
          : m.path.endsWith('.gz')
            ? 'gzip'
            : undefined;
      if (decompress === undefined) {
        copyFileSync(m.path, dest);
      } else {
        const staged = join(work, basename(m.path));
        copyFileSync(m.path, staged);
        await run.run({ argv: [decompress, '-d', '-f', staged] });
        renameSync(staged.replace(/\.(xz|zst|gz)$/, ''), dest);
      }
    }

    const cpio = join(work, 'initrd.cpio');
    await run.run({
      argv: [
        'cpio',
        '--quiet',
        '-o',
        '-H',
        'newc',
        '-R',
        '0:0',
        '--reproducible',
        '-D',
        root,
        '-O',
        cpio,
      ],
      stdin: `${listTree(root).join('\n')}\n`,
    });
    await run.run({ argv: ['gzip', '-9', '-n', cpio] });

    const staged = join(work, 'out');
    mkdirSync(staged, { mode: 0o755 });
    renameSync(`${cpio}.gz`, join(staged, 'initrd.img'));
    copyFileSync(bootKernel, join(staged, 'vmlinuz'));
    for (const f of ['initrd.img', 'vmlinuz']) chmodSync(join(staged, f), 0o644);
    chmodSync(staged, 0o755);
    try {
      renameSync(staged, dir);
    } catch (e) {
      // another process finished the same build first: theirs is as good as ours
      if (!(existsSync(result.kernel) && existsSync(result.initrd))) throw e;
    }
  } catch (e) {
    if (e instanceof Error && 'argv' in e && /ENOENT|not found/.test(e.message)) {
      throw new Error(`building the test guest needs cpio and gzip (${PACKAGES}): ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return result;
}
