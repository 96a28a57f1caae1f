/**
 * bench/volume-create: `--volumes` 1 GiB file volumes made through kumo-api, `--parallel`
 * in flight, against a shell script doing the host steps by hand, in the same run.
 *
 * 1. **kumo**: each worker POSTs `/volume/v3/{project}/volumes` (type file, 1 GiB) and polls
 *    the volume until `available`, then takes the next; timed from the first POST until the
 *    last volume is available. On the way: the scheduler, the hint, the volume agent's
 *    get_volume_info, the sparse file, its tgt target (LUN 1, CHAP account bound, an empty
 *    ACL: a volume is exported when it is made), its report, the API's status change.
 *    Every volume's file and target are checked afterwards.
 * 2. **baseline**: bench/volume-create-baseline.sh on a second tgtd of its own: per volume
 *    `truncate`, then `tgtadm` new target, LUN 1, CHAP account, account bind and an
 *    initiator ACL (`xargs -P --parallel`); also truncate alone, for scale.
 * 3. **attach**: `--attaches` times, a volume is attached to a running guest (one compute
 *    host of the volume lab) and timed from the attach call until tgtadm shows its target's
 *    ACL admitting the host, until the guest prints its KUMO-DISK line (device visible in
 *    the guest) and until the API says in-use; then detached.
 *
 * Last line: `ratio kumo/baseline: X.XX`, created and exported against truncate + tgtadm
 * (target ≤ 1.5; the baseline binds one ACL entry more). Invariant: the lab and the
 * baseline's tgtd and files are removed at exit, also after a failure or Ctrl-C.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { targetIqn, volumeName } from '../contracts/volume.ts';
import { runCommand } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import { DISK_GONE_MARKER, DISK_MARKER } from '../test/helpers/guest-init.ts';
import { createVolumeLab, type VolumeLab } from '../test/helpers/volume-lab.ts';
import {
  attach,
  createVolume,
  detach,
  markerLines,
  waitMarker,
  waitVolume,
} from '../test/helpers/volume-lab-api.ts';
import { startTgtd, type Tgtd } from '../test/helpers/volume-lab-tgtd.ts';
import { logTail, runBench } from './lib.ts';

const { values: args } = parseArgs({
  options: {
    volumes: { type: 'string', default: '50' },
    parallel: { type: 'string', default: '10' },
    attaches: { type: 'string', default: '3' },
  },
});
const count = Number(args.volumes);
const parallel = Number(args.parallel);
const attaches = Number(args.attaches);
const BASELINE = join(import.meta.dirname, 'volume-create-baseline.sh');

const state: { lab?: VolumeLab; tgtd?: Tgtd; dir?: string } = {};
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Every volume's file is 1 GiB and its target has LUN 1 on it, one account, no ACL entry. */
async function checkKumo(lab: VolumeLab, ids: string[]): Promise<void> {
  const targets = await lab.tgtd.targets();
  for (const id of ids) {
    const file = join(lab.volumesDir, volumeName(id));
    const size = statSync(file).size;
    if (size !== 1024 ** 3) throw new Error(`volume ${id}: file of ${size} bytes`);
    const t = targets.find((x) => x.iqn === targetIqn(id));
    if (!t || t.backing.join() !== file || t.accounts.length !== 1 || t.acl.length !== 0)
      throw new Error(`volume ${id}: target ${JSON.stringify(t)}`);
  }
}

/** Phase 1: `count` volumes, `parallel` workers; ms until all available, and their ids. */
async function kumoPhase(lab: VolumeLab): Promise<{ ms: number; ids: string[] }> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const v = await createVolume(lab.c, { size: 1, name: `bench-${next}`, volume_type: 'file' });
      await waitVolume(lab.c, v.id, 'available', [], 120_000);
      ids.push(v.id);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: parallel }, worker));
  const ms = performance.now() - t0;
  await checkKumo(lab, ids);
  return { ms, ids };
}

/** The script with `mode` (export: truncate + tgtadm; data: truncate only); ms. */
async function runBaseline(dir: string, tgtd: Tgtd, initiator: string, mode: string) {
  const files = join(dir, `baseline-${mode}`);
  mkdirSync(files);
  const argv = ['bash', BASELINE, files, String(tgtd.ctl), String(count), String(parallel)];
  const t0 = performance.now();
  const r = await runCommand([...argv, initiator, mode], {}, 300_000);
  const ms = performance.now() - t0;
  if (r.code !== 0)
    throw new Error(`baseline ${mode} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return ms;
}

/** Phase 2: the shell script on a tgtd of its own, checked by tgtadm afterwards. */
async function baselinePhase(dir: string, initiator: string) {
  const tgtd = await startTgtd(dir);
  state.tgtd = tgtd;
  const dataOnly = await runBaseline(dir, tgtd, initiator, 'data');
  const ms = await runBaseline(dir, tgtd, initiator, 'export');
  const targets = await tgtd.targets();
  const complete = targets.filter(
    (t) => t.backing.length === 1 && t.accounts.length === 1 && t.acl.includes(initiator),
  );
  if (complete.length !== count) throw new Error(`baseline: ${complete.length}/${count} targets`);
  await tgtd.stop();
  return { ms, dataOnly };
}

interface AttachTiming {
  exported: number;
  visible: number;
  inUse: number;
}

/** One attach of `id` to `server`: ms to the ACL entry, to the guest's device, to in-use. */
async function timeAttach(lab: VolumeLab, server: string, id: string): Promise<AttachTiming> {
  const initiator = lab.compute[0]?.initiator as string;
  const seen = (await markerLines(lab.c, server, DISK_MARKER)).length;
  const t0 = performance.now();
  const res = await attach(lab.c, server, id);
  if (res.status !== 200) throw new Error(`attach: ${res.status} ${JSON.stringify(res.body)}`);
  const exportedAt = waitFor(
    "the target's ACL admits the host",
    async () =>
      (await lab.tgtd.targets()).some((t) => t.iqn === targetIqn(id) && t.acl.includes(initiator))
        ? performance.now()
        : undefined,
    60_000,
    20,
  );
  const visibleAt = waitMarker(lab.c, server, DISK_MARKER, seen, 120_000).then(() =>
    performance.now(),
  );
  const inUseAt = waitVolume(lab.c, id, 'in-use', [], 120_000).then(() => performance.now());
  const [e, v, u] = await Promise.all([exportedAt, visibleAt, inUseAt]);
  return { exported: e - t0, visible: v - t0, inUse: u - t0 };
}

async function detachAndWait(lab: VolumeLab, server: string, id: string) {
  const gone = (await markerLines(lab.c, server, DISK_GONE_MARKER)).length;
  const res = await detach(lab.c, server, id);
  if (res.status !== 202) throw new Error(`detach: ${res.status} ${JSON.stringify(res.body)}`);
  await waitVolume(lab.c, id, 'available', [], 120_000);
  await waitMarker(lab.c, server, DISK_GONE_MARKER, gone, 120_000);
}

async function attachPhase(lab: VolumeLab, ids: string[]): Promise<AttachTiming[]> {
  if (attaches === 0) return [];
  const image = await lab.image('bench-disk', 'kumo.nodhcp kumo.disk');
  const server = await lab.boot('bench-guest', image);
  const out: AttachTiming[] = [];
  for (const id of ids.slice(0, attaches)) {
    out.push(await timeAttach(lab, server.id, id));
    await detachAndWait(lab, server.id, id);
  }
  return out;
}

function report(kumoMs: number, base: { ms: number; dataOnly: number }, times: AttachTiming[]) {
  const p = `(xargs -P ${parallel})`;
  console.log(`baseline: ${count} files truncated only in ${secs(base.dataOnly)} ${p}`);
  console.log(`baseline: ${count} volumes truncated and exported in ${secs(base.ms)} ${p}`);
  for (const [i, t] of times.entries())
    console.log(
      `attach ${i + 1}: host admitted ${secs(t.exported)}, device in guest ${secs(t.visible)}, in-use ${secs(t.inUse)}`,
    );
  const pick = (k: keyof AttachTiming) => secs(median(times.map((t) => t[k])));
  if (times.length > 0)
    console.log(
      `attach call → median: host admitted by the ACL ${pick('exported')}, device visible in the guest ${pick('visible')}, in-use ${pick('inUse')}`,
    );
  console.log(`ratio kumo/baseline: ${(kumoMs / base.ms).toFixed(2)}`);
}

async function main() {
  process.env.TMPDIR = process.env.KUMO_BENCH_TMPDIR ?? tmpdir();
  state.dir = mkdtempSync(join(tmpdir(), 'kumo-bench-volume-'));
  const t0 = Date.now();
  const lab = await createVolumeLab({ computeHosts: 1 });
  state.lab = lab;
  console.log(
    `lab up in ${secs(Date.now() - t0)}: storage host ${lab.storageHost}, tgtd ${lab.tgtd.portal}`,
  );
  const kumo = await kumoPhase(lab);
  console.log(
    `kumo: ${count} volumes created and exported, available in ${secs(kumo.ms)} (${parallel} in flight)`,
  );
  const base = await baselinePhase(state.dir, lab.compute[0]?.initiator as string);
  const times = await attachPhase(lab, kumo.ids);
  report(kumo.ms, base, times);
}

await runBench({
  main,
  cleanup: async () => {
    const say = (e: Error) => console.error(`cleanup: ${e.message}`);
    await state.tgtd?.stop().catch(say);
    await state.lab?.destroy().catch(say);
    if (state.dir) rmSync(state.dir, { recursive: true, force: true });
  },
  lastly: () => {
    const c = state.lab?.c;
    for (const p of [c?.api, ...(c?.hostAgents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
    for (const pid of [state.lab?.tgtd.pid, state.tgtd?.pid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  },
  onFailure: () => {
    const c = state.lab?.c;
    if (!c) return;
    console.error(`kumo-api log (last lines):\n${logTail(c.api?.logPath ?? '', 15)}`);
    const agent = state.lab?.volumeAgent;
    console.error(`volume agent log (last lines):\n${logTail(agent?.logPath ?? '', 15)}`);
  },
});
