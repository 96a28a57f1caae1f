/**
 * Real LVM volume groups for tests, on loop devices over sparse files, used with
 * activation disabled (HOST-LAB: this kernel has no device-mapper, so LVM works at the
 * metadata level).
 *
 * Invariants: every group is `kumo-test-<hex>` on its own loop device and file, and
 * `cleanup()` removes the group, the PV label, the loop device and the file, also after a
 * failed test; a step that fails throws with the command and LVM's stderr (never a skip).
 * `restoreLayout` writes LVs that lvcreate refuses to make without device-mapper (a thin
 * pool, thin LVs, thick snapshots) straight into the group's metadata with vgcfgrestore:
 * LVM allocates their extents as plain LVs first, the edit only retypes and links them,
 * and what lvs/lvremove then do with them is LVM's own behaviour.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCommandRunner } from '../../core/exec.ts';
import type { LvmContext } from '../../host/lvm/context.ts';
import { tempDir } from './env.ts';

const NO_ACTIVATION = ['--config', 'global{activation=0}'];

export function lvmTool(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, [...NO_ACTIVATION, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' },
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

export interface LoopVolumeGroup {
  ctx: LvmContext;
  device: string;
  cleanup(): void;
}

/** LVM keeps a backup and archives of every group's metadata in /etc/lvm: drop the test's. */
function forgetBackups(vg: string): void {
  rmSync(join('/etc/lvm/backup', vg), { force: true });
  const archive = '/etc/lvm/archive';
  const mine = (n: string) => n.startsWith(`${vg}_`) && n.endsWith('.vg');
  for (const n of readdirSync(archive).filter(mine)) rmSync(join(archive, n), { force: true });
}

/** A fresh VG of `sizeMb` on a loop device (the file is sparse: it costs no disk). */
export function loopVolumeGroup(sizeMb: number): LoopVolumeGroup {
  const dir = tempDir('kumo-lvm-');
  const file = join(dir.path, 'pv.img');
  execFileSync('truncate', ['-s', `${sizeMb}M`, file]);
  const device = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
  const vg = `kumo-test-${randomBytes(4).toString('hex')}`;
  const cleanup = () => {
    for (const step of [() => lvmTool('vgremove', ['-f', vg]), () => lvmTool('pvremove', [device])])
      try {
        step();
      } catch {
        /* the group may not exist yet; the loop device and file go anyway */
      }
    execFileSync('losetup', ['-d', device]);
    dir.cleanup();
    forgetBackups(vg);
  };
  try {
    lvmTool('pvcreate', [device]);
    lvmTool('vgcreate', [vg, device]);
  } catch (e) {
    cleanup();
    throw e;
  }
  return { ctx: { runner: createCommandRunner(), vg, activation: false }, device, cleanup };
}

/** An LVM object id (6-4-4-4-4-4-6 of [A-Za-z0-9]). */
function lvmId(): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(32);
  const s = [...bytes].map((b) => abc[b % abc.length]).join('');
  return [6, 4, 4, 4, 4, 4, 6]
    .map((n, i, all) => {
      const at = all.slice(0, i).reduce((a, b) => a + b, 0);
      return s.slice(at, at + n);
    })
    .join('-');
}

const block = (name: string, visible: boolean, segment: string, extents: number) =>
  `\t\t${name} {\n\t\t\tid = "${lvmId()}"\n\t\t\tstatus = ["READ", "WRITE"${visible ? ', "VISIBLE"' : ''}]\n` +
  `\t\t\tflags = []\n\t\t\tsegment_count = 1\n\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n` +
  `\t\t\t\textent_count = ${extents}\n\n${segment}\t\t\t}\n\t\t}\n\n`;

export interface Layout {
  /** A thin pool `<vg>-pool` made of two existing plain LVs (renamed and hidden). */
  pool?: { data: string; meta: string; extents: number };
  /** Thin LVs in that pool; `origin` makes one a thin snapshot. */
  thin?: { name: string; extents: number; origin?: string }[];
  /** Thick snapshots: `cow` (an existing plain LV) becomes the snapshot of `origin`. */
  snapshots?: { cow: string; origin: string; extents: number }[];
}

function retype(text: string, from: string, to: string): string {
  const start = text.indexOf(`\t\t${from} {\n`);
  if (start < 0) throw new Error(`restoreLayout: no LV ${from} in the metadata`);
  const end = text.indexOf('\n\t\t}\n', start);
  const lv = text
    .slice(start, end)
    .replace(`\t\t${from} {`, `\t\t${to} {`)
    .replace(', "VISIBLE"]', ']');
  return text.slice(0, start) + lv + text.slice(end);
}

/** The group's metadata as LVM writes it (vgcfgbackup). */
export function metadataText(vg: string): string {
  const dir = tempDir('kumo-lvm-meta-');
  try {
    const file = join(dir.path, 'vg.txt');
    lvmTool('vgcfgbackup', ['-f', file, vg]);
    return readFileSync(file, 'utf8');
  } finally {
    dir.cleanup();
  }
}

/** Rewrites the group's metadata with `layout` (vgcfgbackup → edit → vgcfgrestore). */
export function restoreLayout(vg: string, layout: Layout): void {
  const dir = tempDir('kumo-lvm-meta-');
  try {
    const file = join(dir.path, 'vg.txt');
    let text = metadataText(vg);
    let added = '';
    const pool = `${vg}-pool`;
    if (layout.pool) {
      text = retype(
        retype(text, layout.pool.data, `${pool}_tdata`),
        layout.pool.meta,
        `${pool}_tmeta`,
      );
      const seg = `\t\t\t\ttype = "thin-pool"\n\t\t\t\tmetadata = "${pool}_tmeta"\n\t\t\t\tpool = "${pool}_tdata"\n\t\t\t\ttransaction_id = ${layout.thin?.length ?? 0}\n\t\t\t\tchunk_size = 128\n\t\t\t\tdiscards = "passdown"\n\t\t\t\tzero_new_blocks = 0\n`;
      added += block(pool, true, seg, layout.pool.extents);
    }
    for (const [i, t] of (layout.thin ?? []).entries()) {
      const origin = t.origin ? `\t\t\t\torigin = "${t.origin}"\n` : '';
      const seg = `\t\t\t\ttype = "thin"\n\t\t\t\tthin_pool = "${pool}"\n\t\t\t\ttransaction_id = ${i}\n\t\t\t\tdevice_id = ${i + 1}\n${origin}`;
      added += block(t.name, true, seg, t.extents);
    }
    for (const [i, s] of (layout.snapshots ?? []).entries()) {
      const seg = `\t\t\t\ttype = "snapshot"\n\t\t\t\tchunk_size = 8\n\t\t\t\torigin = "${s.origin}"\n\t\t\t\tcow_store = "${s.cow}"\n`;
      added += block(`snapshot${i}`, false, seg, s.extents);
    }
    const at = text.indexOf('\tlogical_volumes {\n');
    if (at < 0) throw new Error('restoreLayout: the group has no LVs to build on');
    const insert = at + '\tlogical_volumes {\n'.length;
    writeFileSync(file, `${text.slice(0, insert)}\n${added}${text.slice(insert)}`);
    lvmTool('vgcfgrestore', ['--force', '-f', file, vg]);
  } finally {
    dir.cleanup();
  }
}
