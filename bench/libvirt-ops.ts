/**
 * bench/libvirt-ops: the same domain operations through Kumo's libvirt client and
 * through `virsh`, in one run, against libvirtd's `test:///default` driver.
 *
 *   node bench/libvirt-ops.ts [--domains 40]
 *
 * Each domain gets five operations — define, start, info, destroy, undefine — so the
 * default is 200. Kumo: one persistent connection (host/libvirt), operations in order.
 * Baseline: one `virsh -c test+unix:///default <command>` process per operation, the
 * way a shell-out agent drives libvirt (`test+unix` makes virsh go through libvirtd, like
 * our client, so both see the same driver and its state). Domain names carry the run's
 * id, and every domain either run defined is undefined at the end, also on failure.
 * Prints per-operation p50/p99 and totals, and the ratio last.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLibvirtClient, type LibvirtClient } from '../host/libvirt/client.ts';

const { values } = parseArgs({ options: { domains: { type: 'string', default: '40' } } });
const N = Number(values.domains);
if (!Number.isInteger(N) || N < 1 || N > 1000) throw new Error('--domains must be 1..1000');
const RUN = randomUUID().slice(0, 8);
const dir = mkdtempSync(join(tmpdir(), 'kumo-libvirt-bench-'));

const domainXml = (name: string) =>
  `<domain type='test'><name>${name}</name><uuid>${randomUUID()}</uuid>` +
  "<memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function timed(times: number[], op: () => Promise<unknown>) {
  const t0 = performance.now();
  await op();
  times.push(performance.now() - t0);
}

async function kumo(client: LibvirtClient): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < N; i++) {
    const xml = domainXml(`kumo-bench-${RUN}-k${i}`);
    let dom = await (async () => {
      const t0 = performance.now();
      const d = await client.defineXml(xml);
      times.push(performance.now() - t0);
      return d;
    })();
    await timed(times, async () => {
      dom = await client.create(dom);
    });
    await timed(times, () => client.getInfo(dom));
    await timed(times, () => client.destroy(dom));
    await timed(times, () => client.undefine(dom));
  }
  return times;
}

function virsh(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('virsh', ['-q', '-c', 'test+unix:///default', ...args], (err, _out, stderr) =>
      err
        ? reject(new Error(`virsh ${args.join(' ')}: ${stderr.trim() || err.message}`))
        : resolve(),
    );
  });
}

async function baseline(): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < N; i++) {
    const name = `kumo-bench-${RUN}-v${i}`;
    const file = join(dir, `${name}.xml`);
    writeFileSync(file, domainXml(name));
    for (const args of [
      ['define', file],
      ['start', name],
      ['dominfo', name],
      ['destroy', name],
      ['undefine', name],
    ]) {
      await timed(times, () => virsh(args));
    }
  }
  return times;
}

async function cleanup(client: LibvirtClient | undefined) {
  if (client) {
    for (const d of await client.listAllDomains().catch(() => [])) {
      if (!d.name.startsWith(`kumo-bench-${RUN}-`)) continue;
      await client.destroy(d).catch(() => {});
      await client.undefine(d).catch(() => {});
    }
    await client.close().catch(() => {});
  }
  rmSync(dir, { recursive: true, force: true });
}

const line = (what: string, t: number[]) =>
  `${what}: ${t.length} operations in ${(t.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s; per operation p50 ${pct(t, 50).toFixed(2)} ms, p99 ${pct(t, 99).toFixed(2)} ms`;

let client: LibvirtClient | undefined;
try {
  client = await createLibvirtClient({ uri: 'test:///default', timeoutMs: 30_000 });
  const k = await kumo(client);
  const v = await baseline();
  const total = (t: number[]) => t.reduce((a, b) => a + b, 0);
  console.log(
    `libvirt-ops bench: ${N} domains × define, start, info, destroy, undefine on test:///default`,
  );
  console.log(line('host/libvirt (one connection)', k));
  console.log(line('virsh (one process per operation)', v));
  console.log(`ratio virsh/kumo (total time): ${(total(v) / total(k)).toFixed(1)}`);
} catch (e) {
  console.error(`bench failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  await cleanup(client);
}
