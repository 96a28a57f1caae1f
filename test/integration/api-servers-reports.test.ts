/**
 * The compute agents' reports (update_instance) in kumo-api on both database engines with
 * a real broker (api-servers-harness.ts), and what ends a build besides them.
 *
 * Shown: a task ends only on its own task_id and from its own host; a report observed
 * under an older task_id moves neither power_state nor vm_state; with no task pending
 * the vm_state follows the power state as Nova's _sync_instance_power_state does; a
 * failed spawn leaves its host in the statement that ends it, so a DELETE racing the
 * port release is local and a hard reboot is refused; a spec's NICs are the server's own
 * ports, not every port naming it as device; builds stuck in `scheduling` end in ERROR
 * with host and ports released.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { finishTask } from '../../api/db/server-tasks.ts';
import { releasePorts } from '../../api/instance-ports.ts';
import { sweepStuckBuilds } from '../../api/scheduler/compute-sweep.ts';
import type { Port } from '../../contracts/network.ts';
import type { PowerState, VmState } from '../../contracts/servers.ts';
import { silentLogger } from '../../core/log.ts';
import { ADMIN, type Body, serversHarness } from './api-servers-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`server reports on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, boot, show, portsOf, hints, waitHint, rpc, update, act } = h;
    const { advance, ok, report, novaErr } = h;
    const deps = () => ({ db: h.db, broker: h.api, log: silentLogger(), clock: h.clock });

    test('update_instance: own task ids only, own host only, faults, failed deletes', async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: h.net.n.id }] });
      const timings = { image: 5, define: 6, plug: 7, wait_port: 8, boot: 9 };
      await update({
        host: 'h2',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
      });
      assert.equal((await show(id)).status, 'BUILD', 'a report from another host is ignored');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
        timings,
      });
      let s = await show(id);
      assert.equal(s.status, 'ACTIVE');
      assert.equal(s['OS-EXT-STS:task_state'], null);
      assert.equal(s['OS-EXT-STS:power_state'], 1);
      assert.match(String(s['OS-SRV-USG:launched_at']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000$/);
      assert.equal(s['kumo:spawn_timings'], undefined, 'Kumo diagnostics only when asked for');
      const diag = await h.app.inject({
        method: 'GET',
        url: `/servers/${id}`,
        headers: { 'x-auth-token': ADMIN, 'x-kumo-diagnostics': 'spawn-timings' },
      });
      assert.deepEqual(diag.json().server['kumo:spawn_timings'], timings);

      assert.equal((await act(id, { reboot: { type: 'SOFT' } })).status, 202);
      await waitHint('h1', id, 2);
      assert.equal((await show(id)).status, 'REBOOT');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 4,
        task_done: 1,
        vm_state: 'stopped',
      });
      s = await show(id);
      assert.equal(s.status, 'REBOOT', 'a stale task id does not end the current task');
      assert.equal(s['OS-EXT-STS:power_state'], 4, 'but its power state is kept');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 2,
        vm_state: 'active',
      });
      assert.equal((await show(id)).status, 'ACTIVE');

      assert.equal((await act(id, { 'os-stop': null })).status, 202);
      await update({ host: 'h1', instance_id: id, power_state: 1 });
      assert.equal((await show(id)).status, 'ACTIVE', 'no power sync while a task runs');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'powering-off');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 4,
        task_done: 3,
        vm_state: 'error',
        fault: { message: 'libvirt said no', details: 'trace' },
      });
      s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.deepEqual(
        { ...(s.fault as Body), created: undefined },
        { code: 500, message: 'libvirt said no', details: 'trace', created: undefined },
      );
      await update({ host: 'h1', instance_id: id, power_state: 1 });
      assert.equal((await show(id)).status, 'ERROR', 'ERROR does not follow power');
      assert.equal((await show(id))['OS-EXT-STS:power_state'], 1, 'its power state is kept');
      await update({ host: 'h1', instance_id: id, power_state: 4, deleted: true });
      assert.equal((await show(id)).status, 'ERROR', 'deleted without a delete task is ignored');
      assert.equal((await portsOf(id)).length, 1);

      // A delete the agent could not do ends only in ERROR; then it can be retried.
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 4,
        vm_state: 'active',
      });
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 4,
        vm_state: 'error',
        fault: { message: 'domain would not go' },
      });
      s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-STS:task_state'], null);
      assert.equal((s.fault as Body).message, 'domain would not go');
    });

    test('a spawn the agent reports failed: ERROR, its ports and its host released', async () => {
      await report('h1');
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const id = await boot({ networks: [{ uuid: h.net.n.id }, { port: own.id }] });
      assert.equal((await portsOf(id)).length, 2);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 0,
        task_done: 1,
        vm_state: 'error',
        fault: { message: 'base image names a backing file' },
      });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal((s.fault as Body).message, 'base image names a backing file');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null, 'the host is not charged for it any more');
      assert.deepEqual(await portsOf(id), [], 'the new port is deleted, the own port unbound');
      const back = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(back.device_id, '');
      assert.equal(await rpc.instance('h1', id), null, 'the agent removes what is left');
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      assert.equal((await call('GET', `/servers/${id}`)).status, 404, 'deleted locally');
    });

    /** Starts `body`'s task and reports it done with `vm` and `power`. */
    const run = async (id: string, body: Body, vm: VmState, power: PowerState) => {
      assert.equal((await act(id, body)).status, 202, JSON.stringify(body));
      const task = Number((await rpc.instance('h1', id))?.task_id);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: power,
        task_done: task,
        vm_state: vm,
      });
    };
    const powerIs = (id: string) => (power: PowerState) =>
      update({ host: 'h1', instance_id: id, power_state: power });
    const expectState = async (id: string, status: string, power: number, why: string) => {
      const s = await show(id);
      assert.equal(s.status, status, why);
      assert.equal(s['OS-EXT-STS:power_state'], power, why);
    };

    test("power sync is Nova's: off, crashed or suspended stops an active server; pauses and a running stopped one are left", async () => {
      await report('h1');
      const id = await boot();
      const power = powerIs(id);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
      });
      const table: [VmState | null, Body | null, PowerState, string][] = [
        // active: paused unexpectedly or not found → ignored; suspended → stopped
        [null, null, 3, 'ACTIVE'],
        [null, null, 0, 'ACTIVE'],
        [null, null, 7, 'SHUTOFF'],
        // stopped: running (Nova would force a stop), paused, not found → left alone
        [null, null, 1, 'SHUTOFF'],
        [null, null, 3, 'SHUTOFF'],
        [null, null, 0, 'SHUTOFF'],
        ['active', { 'os-start': null }, 1, 'ACTIVE'],
        [null, null, 6, 'SHUTOFF'],
        ['active', { 'os-start': null }, 1, 'ACTIVE'],
        [null, null, 4, 'SHUTOFF'],
        // paused: running, suspended, not found → kept; crashed → stopped
        ['active', { 'os-start': null }, 1, 'ACTIVE'],
        ['paused', { pause: null }, 3, 'PAUSED'],
        [null, null, 1, 'PAUSED'],
        [null, null, 7, 'PAUSED'],
        [null, null, 0, 'PAUSED'],
        [null, null, 6, 'SHUTOFF'],
        // suspended: never follows
        ['active', { 'os-start': null }, 1, 'ACTIVE'],
        ['suspended', { suspend: null }, 7, 'SUSPENDED'],
        [null, null, 1, 'SUSPENDED'],
        [null, null, 4, 'SUSPENDED'],
        [null, null, 6, 'SUSPENDED'],
        [null, null, 0, 'SUSPENDED'],
      ];
      for (const [vm, body, p, status] of table) {
        if (vm && body) await run(id, body, vm, p);
        else await power(p);
        await expectState(id, status, p, `${JSON.stringify(body)} power ${p}`);
      }
      assert.equal((await rpc.instance('h1', id))?.task_id, 7, 'no task was started by a sync');
    });

    test('a report observed under an older task moves neither power_state nor vm_state', async () => {
      await report('h1');
      const id = await boot();
      const seen = (power: PowerState, observed: number) =>
        update({ host: 'h1', instance_id: id, power_state: power, observed_task_id: observed });
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        observed_task_id: 1,
        task_done: 1,
        vm_state: 'active',
      });
      assert.equal((await act(id, { 'os-stop': null })).status, 202);
      await seen(4, 1);
      await expectState(id, 'ACTIVE', 1, 'a report from before the stop task');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 4,
        observed_task_id: 2,
        task_done: 2,
        vm_state: 'stopped',
      });
      await expectState(id, 'SHUTOFF', 4, 'the stop done');
      await seen(1, 1);
      await expectState(id, 'SHUTOFF', 4, 'a running report of task 1, consumed late');
      assert.equal((await act(id, { 'os-start': null })).status, 202);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        observed_task_id: 3,
        task_done: 3,
        vm_state: 'active',
      });
      await seen(4, 2);
      await expectState(
        id,
        'ACTIVE',
        1,
        'an off report of task 2 does not stop the started server',
      );
      await seen(4, 3);
      await expectState(id, 'SHUTOFF', 4, 'the same report under the current task does');
      await update({ host: 'h1', instance_id: id, power_state: 1 });
      await expectState(
        id,
        'SHUTOFF',
        1,
        'a report without observed_task_id stores its power state',
      );
    });

    test('a failed spawn leaves its host with its task: a DELETE racing the port release is local, a hard reboot is refused', async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: h.net.n.id }] });
      await waitHint('h1', id, 1);
      // The moment between the report's UPDATE and its port release:
      const fault = {
        code: 500,
        message: 'spawn failed',
        details: null,
        created: '2026-11-22T10:00:00Z',
      };
      const result = { vmState: 'error' as const, fault, timings: null };
      assert.deepEqual(await finishTask(h.db, id, 1, result, h.clock.now()), { host: '' });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null);
      assert.equal((await portsOf(id)).length, 1, 'its port not yet released');
      assert.equal(await rpc.instance('h1', id), null);
      const reboot = await act(id, { reboot: { type: 'HARD' } });
      assert.equal(novaErr(reboot, 'conflictingRequest', 409), `Instance ${id} is not ready.`);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], null, 'no task was started');
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      assert.equal((await call('GET', `/servers/${id}`)).status, 404, 'deleted locally at once');
      assert.deepEqual(await portsOf(id), []);
      // The report's own release runs after it: nothing left, nothing fails.
      await releasePorts(deps(), { id, keptPorts: [] });
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 0,
        task_done: 1,
        vm_state: 'error',
      });
      assert.equal((await call('GET', `/servers/${id}`)).status, 404);
      assert.deepEqual(
        hints('compute_agent.h1', 'instance', id).map((x) => x.message.args),
        [{ resource: 'instance', id, revision: 1 }],
        'no delete hint to the host it left',
      );
    });

    test("a spec's NICs are the server's own ports: ports that only name it as device are none", async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: h.net.n.id }] });
      const [own] = await portsOf(id);
      assert.ok(own);
      // 17 NICs would make the spec one the agent cannot parse.
      for (let i = 0; i < 17; i++)
        await ok<Port>('POST', '/v2.0/ports', 'port', {
          port: { network_id: h.net.n.id, device_id: id },
        });
      assert.equal((await portsOf(id)).length, 18);
      const spec = await rpc.instance('h1', id);
      assert.deepEqual(
        spec?.ports.map((p) => p.id),
        [own.id],
      );
      const addresses = (await show(id)).addresses as Record<string, Body[]>;
      assert.deepEqual(
        Object.values(addresses).flatMap((list) => list.map((a) => a.addr)),
        own.fixed_ips.map((f) => f.ip_address),
      );
      // They go with the server, as Nova's deallocation takes every port naming it.
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
      });
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await update({ host: 'h1', instance_id: id, power_state: 0, deleted: true });
      assert.deepEqual(await portsOf(id), []);
    });

    test('builds stuck in scheduling end in ERROR, host and ports released; younger ones and handed-over ones are left', async () => {
      await report('h1');
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const stuck = await h.placeOnly(own.id);
      advance(30);
      const young = await h.placeOnly();
      const handed = await boot();
      advance(31);
      assert.deepEqual(await sweepStuckBuilds(deps()), [stuck.id]);
      const s = await show(stuck.id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-STS:task_state'], null);
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null, 'the host is not charged for it');
      assert.match(String((s.fault as Body).message), /aborted: it was never handed to its host/);
      assert.match(String((s.fault as Body).details), /scheduling for more than 60 s/);
      assert.deepEqual(await portsOf(stuck.id), [], 'the new port deleted, the own port unbound');
      const back = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(back.device_id, '');
      assert.equal(back['binding:host_id'], '');
      assert.equal((await show(young.id))['OS-EXT-STS:task_state'], 'scheduling');
      assert.equal((await portsOf(young.id)).length, 1);
      assert.equal((await show(handed))['OS-EXT-STS:task_state'], 'spawning');

      // The compute sweep (api/jobs.ts runs it under its lease) fails the young one too.
      advance(60);
      await sweepStuckBuilds(deps());
      assert.equal((await show(young.id)).status, 'ERROR');
      assert.deepEqual(await portsOf(young.id), []);
      assert.equal((await show(handed))['OS-EXT-STS:task_state'], 'spawning');
      assert.equal((await call('DELETE', `/servers/${stuck.id}`)).status, 204);
      assert.equal((await call('GET', `/servers/${stuck.id}`)).status, 404, 'deleted locally');
    });
  });
}
