/**
 * Volumes end to end (issue 17's "What must show") on one storage host and two compute
 * hosts: kumo-api, a kumo-volume-agent with the file backend and a tgtd of its own, real
 * libvirtd guests that see a hot-plugged /dev/vdb over iSCSI with CHAP. A volume is created
 * and available only once exported (its target: LUN 1, its CHAP account, an empty ACL that
 * admits nobody), attached to guest 1 (host A), which writes a pattern; detached (the
 * target stays, its ACL empty again); attached to guest 2
 * (host B), which reads the pattern back; the statuses follow each step through the Cinder
 * API. Wrong CHAP credentials are refused and host A's initiator no longer opens the
 * target once detached; deleting an in-use volume or one with a snapshot is refused; a
 * volume made from a snapshot holds its data; an extended volume shows its new size on the
 * next attach; `kill -9` of the volume agent leaves the target serving and the guest's
 * I/O going; a restarted tgtd gets every volume's target back (attached or not) within a
 * resync; a hard reboot puts the
 * volume back; deleting the server detaches it and keeps its data; bad requests and a
 * volume larger than the free capacity leave nothing on the host.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import { targetIqn, volumeName } from '../../contracts/volume.ts';
import { RESYNC_INTERVAL, runCommand } from '../helpers/cluster.ts';
import { consoleOutput, type GuestImages, waitGone, waitStatus } from '../helpers/compute.ts';
import { waitFor } from '../helpers/env.ts';
import {
  DISK_GONE_MARKER,
  DISK_IO_MARKER,
  DISK_MARKER,
  DISK_WROTE_MARKER,
} from '../helpers/guest-init.ts';
import { createVolumeLab, type VolumeLab } from '../helpers/volume-lab.ts';
import {
  attach,
  createSnapshot,
  createVolume,
  detach,
  getVolume,
  listVolumes,
  markerLines,
  parseDiskLine,
  postVolume,
  V3,
  type VolumeView,
  volumeAction,
  waitMarker,
  waitSnapshot,
  waitVolume,
  waitVolumeGone,
} from '../helpers/volume-lab-api.ts';
import { iscsiInq } from '../helpers/volume-lab-tgtd.ts';

const PATTERN = 'KumoVolumePattern17';
const GIB_SECTORS = 2 * 1024 * 1024;
const GUEST_INIT = 'KUMO-GUEST-INIT';

describe('volumes on a storage host and two compute hosts', { timeout: 900_000 }, () => {
  let v: VolumeLab;
  let writerImage: GuestImages;
  let readerImage: GuestImages;
  /** guest 1 (writes the pattern) on host A, guest 2 (reads) on host B. */
  const g: { id: string; host: string }[] = [];
  let vol: VolumeView;
  let fromSnap: VolumeView;

  const hostOf = (i: number) => v.compute.find((h) => h.name === g[i]?.host);
  const headOfFile = (id: string) => {
    const fd = openSync(join(v.volumesDir, volumeName(id)), 'r');
    const buf = Buffer.alloc(PATTERN.length);
    readSync(fd, buf, 0, buf.length, 0);
    closeSync(fd);
    return buf.toString('latin1');
  };
  const secretUsages = async () =>
    (await runCommand(['virsh', '-c', 'qemu:///system', 'secret-list'])).stdout;
  const targetOf = async (id: string) =>
    (await v.tgtd.targets()).find((t) => t.iqn === targetIqn(id));
  const login = async (id: string, initiator: string, secret?: string) => {
    const chap = await v.chapOf(id);
    return iscsiInq({
      portal: v.tgtd.portal,
      iqn: targetIqn(id),
      initiator,
      user: chap.user,
      secret: secret ?? chap.secret,
    });
  };
  /** Attaches and waits for in-use and the guest's KUMO-DISK line; returns that line. */
  const attachTo = async (i: number, id: string) => {
    const server = g[i]?.id as string;
    const seen = (await markerLines(v.c, server, DISK_MARKER)).length;
    const res = await attach(v.c, server, id);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const att = (res.body as { volumeAttachment: { device: string; volumeId: string } })
      .volumeAttachment;
    assert.equal(att.volumeId, id);
    assert.equal(att.device, '/dev/vdb');
    const trail: string[] = [];
    const inUse = await waitVolume(v.c, id, 'in-use', trail, 90_000);
    assert.equal(trail[0], 'attaching', `attach path: ${trail.join(' → ')}`);
    assert.deepEqual(
      inUse.attachments.map((a) => [a.server_id, a.device]),
      [[server, '/dev/vdb']],
    );
    return waitMarker(v.c, server, DISK_MARKER, seen);
  };
  const detachFrom = async (i: number, id: string) => {
    const server = g[i]?.id as string;
    const seen = (await markerLines(v.c, server, DISK_GONE_MARKER)).length;
    const res = await detach(v.c, server, id);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const trail: string[] = [];
    const avail = await waitVolume(v.c, id, 'available', trail, 90_000);
    assert.equal(trail[0], 'detaching', `detach path: ${trail.join(' → ')}`);
    assert.deepEqual(avail.attachments, []);
    await waitMarker(v.c, server, DISK_GONE_MARKER, seen);
  };

  before(async () => {
    v = await createVolumeLab({ computeHosts: 2 });
    writerImage = await v.image('disk-writer', `kumo.nodhcp kumo.disk kumo.diskwrite=${PATTERN}`);
    readerImage = await v.image('disk-reader', 'kumo.nodhcp kumo.disk');
    g.push(await v.boot('vol-writer', writerImage));
    g.push(await v.boot('vol-reader', readerImage));
    assert.notEqual(g[0]?.host, g[1]?.host, 'one guest per compute host');
  });
  after(async () => {
    await v?.destroy();
  });

  test('the storage and compute agents report their backend, portal and initiators', async () => {
    const res = await v.c.http('GET', '/v2.0/agents?binary=kumo-volume-agent');
    const conf = ((res.body as { agents: Agent[] }).agents[0] as Agent).configurations;
    assert.equal(conf.volume_backend_name, 'file');
    assert.equal(conf.target_portal, v.tgtd.portal);
    assert.ok(Number(conf.free_capacity_gb) > 0, JSON.stringify(conf));
    const cres = await v.c.http('GET', '/v2.0/agents?binary=kumo-compute-agent');
    const initiators = (cres.body as { agents: Agent[] }).agents
      .map((a) => a.configurations.iscsi_initiator)
      .sort();
    assert.deepEqual(initiators, v.compute.map((h) => h.initiator).sort());
  });

  test('a created volume becomes available: a sparse file, its target admitting nobody', async () => {
    vol = await createVolume(v.c, { size: 1, name: 'data', volume_type: 'file' });
    assert.equal(vol.status, 'creating');
    const trail: string[] = [];
    vol = await waitVolume(v.c, vol.id, 'available', trail);
    assert.ok(
      trail.every((s) => s === 'creating' || s === 'available'),
      `create path: ${trail.join(' → ')}`,
    );
    assert.equal(vol.size, 1);
    assert.equal(statSync(join(v.volumesDir, volumeName(vol.id))).size, 1024 ** 3);
    const target = await targetOf(vol.id);
    assert.ok(target, 'exported before it is available');
    assert.deepEqual(target.backing, [join(v.volumesDir, volumeName(vol.id))]);
    assert.deepEqual(target.accounts, [(await v.chapOf(vol.id)).user]);
    assert.deepEqual(target.acl, [], 'no attachment, an empty ACL');
    const a = await login(vol.id, hostOf(0)?.initiator as string);
    assert.notEqual(a.code, 0, 'tgtd admits nobody without an ACL entry');
    assert.match(a.stderr + a.stdout, /Target not found/);
  });

  test('attached to guest 1, which writes the pattern; only host A is admitted', async () => {
    const line = await attachTo(0, vol.id);
    assert.equal(parseDiskLine(line).sectors, GIB_SECTORS);
    await waitMarker(v.c, g[0]?.id as string, DISK_WROTE_MARKER, 0);
    const target = await targetOf(vol.id);
    assert.ok(target, 'the target exists while attached');
    assert.deepEqual(target.acl, [hostOf(0)?.initiator]);
    assert.deepEqual(target.accounts, [(await v.chapOf(vol.id)).user]);
    assert.deepEqual(target.backing, [join(v.volumesDir, volumeName(vol.id))]);
    assert.equal(headOfFile(vol.id), PATTERN, 'the guest wrote through to the file');
  });

  test('wrong CHAP credentials are refused; the right ones from host A open the target', async () => {
    const a = hostOf(0)?.initiator as string;
    const wrong = await login(vol.id, a, 'WrongSecret12345');
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr + wrong.stdout, /Authentication failure/);
    const ok = await login(vol.id, a);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /DIRECT_ACCESS/);
    const other = await login(vol.id, hostOf(1)?.initiator as string);
    assert.notEqual(other.code, 0, 'host B is not admitted while attached to A');
  });

  test('deleting an in-use volume is refused and its data survives', async () => {
    const res = await v.c.http('DELETE', `${V3}/volumes/${vol.id}`);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal((await getVolume(v.c, vol.id))?.status, 'in-use');
    assert.equal(headOfFile(vol.id), PATTERN);
  });

  test('detached: available, the guest loses vdb, host A no longer opens the target', async () => {
    await detachFrom(0, vol.id);
    const target = await targetOf(vol.id);
    assert.ok(target, 'the target stays after the detach');
    assert.deepEqual([target.acl, target.sessions], [[], 0], 'no ACL entry, no session');
    const again = await login(vol.id, hostOf(0)?.initiator as string);
    assert.notEqual(again.code, 0, 'host A logged in after detach');
  });

  test('attached to guest 2 on host B, which reads the pattern back', async () => {
    const line = await attachTo(1, vol.id);
    assert.deepEqual(parseDiskLine(line), { sectors: GIB_SECTORS, head: PATTERN });
    assert.deepEqual((await targetOf(vol.id))?.acl, [hostOf(1)?.initiator]);
    const a = await login(vol.id, hostOf(0)?.initiator as string);
    assert.notEqual(a.code, 0, "host A's initiator and credentials stay refused");
  });

  test('kill -9 of the volume agent: the target keeps serving and the guest I/O goes on', async () => {
    const server = g[1]?.id as string;
    const before = (await markerLines(v.c, server, DISK_IO_MARKER)).length;
    await v.killVolumeAgent();
    const lines = [];
    for (let i = 0; i < 3; i++)
      lines.push(await waitMarker(v.c, server, DISK_IO_MARKER, before + i, 30_000));
    assert.ok(
      lines.every((l) => l.endsWith(' ok')),
      lines.join('\n'),
    );
    const target = await targetOf(vol.id);
    assert.ok(target, 'the target outlives its agent');
    assert.ok(target.sessions >= 1, 'the guest stays logged in');
    await v.startVolumeAgent();
    assert.equal((await getVolume(v.c, vol.id))?.status, 'in-use');
  });

  test("tgtd restarted: every volume's target is back within one resync, the guest writes again", async () => {
    const server = g[1]?.id as string;
    const spare = await createVolume(v.c, { size: 1, name: 'spare', volume_type: 'file' });
    await waitVolume(v.c, spare.id, 'available');
    await v.tgtd.kill();
    await v.tgtd.start();
    const started = Date.now();
    const made = async (id: string) => {
      const t = await targetOf(id);
      return t && t.backing.length === 1 && t.accounts.length === 1 ? t : undefined;
    };
    const target = await waitFor(
      'the targets re-created with their LUN, account and ACL',
      async () => {
        const t = await made(vol.id);
        return t && t.acl.length > 0 && (await made(spare.id)) ? t : undefined;
      },
      30_000,
      200,
    );
    const took = (Date.now() - started) / 1000;
    assert.ok(
      took <= RESYNC_INTERVAL + 3,
      `back after ${took} s (resync every ${RESYNC_INTERVAL} s)`,
    );
    assert.deepEqual(target.acl, [hostOf(1)?.initiator]);
    assert.deepEqual(target.accounts, [(await v.chapOf(vol.id)).user]);
    assert.deepEqual((await targetOf(spare.id))?.acl, [], 'the unattached one admits nobody');
    const seen = (await markerLines(v.c, server, DISK_IO_MARKER)).length;
    const ok = await waitFor(
      'an I/O ok after the restart',
      async () =>
        (await markerLines(v.c, server, DISK_IO_MARKER)).slice(seen).find((l) => l.endsWith(' ok')),
      90_000,
      1000,
    );
    assert.ok(ok);
    const del = await v.c.http('DELETE', `${V3}/volumes/${spare.id}`);
    assert.equal(del.status, 202, JSON.stringify(del.body));
    await waitVolumeGone(v.c, spare.id);
  });

  test('a volume with a snapshot is not deleted until the snapshot is gone', async () => {
    await detachFrom(1, vol.id);
    const snap = await createSnapshot(v.c, vol.id);
    await waitSnapshot(v.c, snap.id, 'available');
    const refused = await v.c.http('DELETE', `${V3}/volumes/${vol.id}`);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal((await getVolume(v.c, vol.id))?.status, 'available');
    fromSnap = await createVolume(v.c, { size: 1, snapshot_id: snap.id, name: 'from-snap' });
    fromSnap = await waitVolume(v.c, fromSnap.id, 'available');
    assert.equal(fromSnap.snapshot_id, snap.id);
    assert.equal(headOfFile(fromSnap.id), PATTERN, 'the new volume holds the snapshot data');
    const del = await v.c.http('DELETE', `${V3}/snapshots/${snap.id}`);
    assert.equal(del.status, 202, JSON.stringify(del.body));
    await waitSnapshot(v.c, snap.id, undefined);
    const gone = await v.c.http('DELETE', `${V3}/volumes/${vol.id}`);
    assert.equal(gone.status, 202, JSON.stringify(gone.body));
    await waitVolumeGone(v.c, vol.id);
    assert.ok(!v.volumeFiles().includes(volumeName(vol.id)), 'the file is removed');
    assert.ok(!v.volumeFiles().some((f) => f.startsWith('snapshot-')), 'no snapshot left');
  });

  test('the volume from the snapshot shows the pattern in a guest', async () => {
    const line = await attachTo(1, fromSnap.id);
    assert.deepEqual(parseDiskLine(line), { sectors: GIB_SECTORS, head: PATTERN });
    await detachFrom(1, fromSnap.id);
  });

  test('extend grows the device the guest sees on the next attach; shrinking is refused', async () => {
    const res = await volumeAction(v.c, fromSnap.id, { 'os-extend': { new_size: 2 } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const trail: string[] = [];
    const grown = await waitVolume(v.c, fromSnap.id, 'available', trail);
    assert.equal(trail[0], 'extending', trail.join(' → '));
    assert.equal(grown.size, 2);
    assert.equal(statSync(join(v.volumesDir, volumeName(fromSnap.id))).size, 2 * 1024 ** 3);
    const shrink = await volumeAction(v.c, fromSnap.id, { 'os-extend': { new_size: 1 } });
    assert.equal(shrink.status, 400, JSON.stringify(shrink.body));
    const line = await attachTo(1, fromSnap.id);
    assert.deepEqual(parseDiskLine(line), { sectors: 2 * GIB_SECTORS, head: PATTERN });
    await detachFrom(1, fromSnap.id);
  });

  test('a hard reboot puts the attached volume back into the guest', async () => {
    const server = g[1]?.id as string;
    await attachTo(1, fromSnap.id);
    const before = await consoleOutput(v.c, server);
    const boots = before.split(GUEST_INIT).length;
    const res = await v.c.http('POST', `/servers/${server}/action`, { reboot: { type: 'HARD' } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await waitStatus(v.c, server, 'ACTIVE');
    const line = await waitFor(
      'a KUMO-DISK line after the reboot',
      async () => {
        const text = await consoleOutput(v.c, server);
        const rebooted = text.split(GUEST_INIT).length > boots || text.length < before.length;
        const lastBoot = text.slice(text.lastIndexOf(GUEST_INIT));
        return rebooted
          ? lastBoot.split(/\r?\n/).find((l) => l.startsWith(`${DISK_MARKER} `))
          : undefined;
      },
      120_000,
      1000,
    );
    assert.deepEqual(parseDiskLine(line.trim()), { sectors: 2 * GIB_SECTORS, head: PATTERN });
    assert.equal((await getVolume(v.c, fromSnap.id))?.status, 'in-use');
  });

  test('deleting the server detaches its volume, which stays with its data; the secret goes', async () => {
    const server = g[1]?.id as string;
    const attachment = (await getVolume(v.c, fromSnap.id))?.attachments[0]?.attachment_id as string;
    assert.ok(attachment, 'the volume shows its attachment id');
    const secretWhileAttached = (await secretUsages()).includes(`kumo-attachment-${attachment}`);
    const res = await v.c.http('DELETE', `/servers/${server}`);
    assert.equal(res.status, 204, JSON.stringify(res.body));
    await waitGone(v.c, server);
    const avail = await waitVolume(v.c, fromSnap.id, 'available', [], 90_000);
    assert.deepEqual(avail.attachments, []);
    const target = await targetOf(fromSnap.id);
    assert.deepEqual([target?.acl, target?.sessions], [[], 0], 'the target stays, admits nobody');
    assert.equal(headOfFile(fromSnap.id), PATTERN);
    await waitFor(
      'the secret removed',
      async () => !(await secretUsages()).includes(attachment),
      30_000,
    );
    assert.ok(secretWhileAttached, `secret kumo-attachment-${attachment} there while attached`);
  });

  test('bad requests are refused with 400 and leave nothing on the host', async () => {
    const files = v.volumeFiles();
    const targets = (await v.tgtd.targets()).length;
    const count = (await listVolumes(v.c)).length;
    const bad: Record<string, unknown>[] = [
      { size: 1, name: 'two\nlines' },
      { size: -1 },
      { size: 1_000_000_000 },
      { size: 1, volume_type: 'no-such-type' },
      { size: 'one' },
    ];
    for (const body of bad) {
      const res = await postVolume(v.c, body);
      assert.equal(
        res.status,
        400,
        `${JSON.stringify(body)}: ${res.status} ${JSON.stringify(res.body)}`,
      );
    }
    assert.equal((await listVolumes(v.c)).length, count);
    assert.deepEqual(v.volumeFiles(), files);
    assert.equal((await v.tgtd.targets()).length, targets);
  });

  test('a volume larger than the free capacity goes to error and leaves nothing', async () => {
    const res = await v.c.http('GET', '/v2.0/agents?binary=kumo-volume-agent');
    const free = Number(
      ((res.body as { agents: Agent[] }).agents[0] as Agent).configurations.free_capacity_gb,
    );
    const files = v.volumeFiles();
    const big = await createVolume(v.c, {
      size: Math.ceil(free) + 50,
      name: 'too-big',
      volume_type: 'file',
    });
    const trail: string[] = [];
    await waitVolume(v.c, big.id, 'error', trail);
    assert.deepEqual(v.volumeFiles(), files);
    assert.equal(await targetOf(big.id), undefined);
    const del = await v.c.http('DELETE', `${V3}/volumes/${big.id}`);
    assert.equal(del.status, 202, JSON.stringify(del.body));
    await waitVolumeGone(v.c, big.id);
  });

  test('the last volume is deleted: no file, no target', async () => {
    const res = await v.c.http('DELETE', `${V3}/volumes/${fromSnap.id}`);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await waitVolumeGone(v.c, fromSnap.id);
    assert.deepEqual(v.volumeFiles(), []);
    assert.deepEqual(await v.tgtd.targets(), []);
  });
});
