/**
 * Acting on and deleting Nova servers in kumo-api on both database engines with a real
 * broker (api-servers-harness.ts).
 *
 * Shown: actions 202 with a new task_id and a hint, 409 naming the state (or a dead
 * agent), 400 for unknown ones; console output round trip and timeout; delete through
 * the agent while it lives, locally when it is dead, and locally for a server still being
 * scheduled, whose hand-over in flight then releases the ports it made.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { handOverInstance, type Nic } from '../../api/scheduler/compute.ts';
import type { Port } from '../../contracts/network.ts';
import type { PowerState } from '../../contracts/servers.ts';
import { silentLogger } from '../../core/log.ts';
import { waitFor } from '../helpers/env.ts';
import { CONSOLE, DOWN, MEMBER, serversHarness } from './api-servers-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`server actions and deletes on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, boot, show, portsOf, hints, waitHint, rpc, update, act } = h;
    const { advance, received, novaErr, ok, report } = h;

    test('actions: 202 with a new task and hint, 409 naming the state, 400 for unknown', async () => {
      await report('h1');
      const id = await boot();
      const done = (task: number, vm: string, power: PowerState) =>
        update({
          host: 'h1',
          instance_id: id,
          power_state: power,
          task_done: task,
          vm_state: vm as 'active',
        });
      await done(1, 'active', 1);
      const start = await act(id, { 'os-start': null });
      assert.equal(
        novaErr(start, 'conflictingRequest', 409),
        `Cannot 'start' instance ${id} while it is in vm_state active`,
      );
      assert.equal((await act(id, { pause: null }, MEMBER)).status, 202, 'members may act');
      assert.equal((await show(id)).status, 'ACTIVE');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'pausing');
      assert.equal(
        novaErr(await act(id, { suspend: null }), 'conflictingRequest', 409),
        `Cannot 'suspend' instance ${id} while it is in task_state pausing`,
      );
      assert.equal(
        novaErr(await act(id, { reboot: { type: 'SOFT' } }), 'conflictingRequest', 409),
        `Cannot 'reboot' instance ${id} while it is in task_state pausing`,
      );
      await done(2, 'paused', 3);
      assert.equal((await show(id)).status, 'PAUSED');
      assert.match(
        novaErr(await act(id, { 'os-stop': null }), 'conflictingRequest', 409),
        /vm_state paused/,
      );
      assert.equal((await act(id, { unpause: null })).status, 202);
      assert.equal((await act(id, { reboot: { type: 'HARD' } })).status, 202, 'hard overrides');
      assert.equal((await show(id)).status, 'PAUSED');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'rebooting_hard');
      await waitHint('h1', id, 4);
      await done(4, 'active', 1);
      assert.equal((await show(id)).status, 'ACTIVE');
      for (const [body, vm, power, status] of [
        [{ suspend: null }, 'suspended', 7, 'SUSPENDED'],
        [{ resume: {} }, 'active', 1, 'ACTIVE'],
        [{ 'os-stop': null }, 'stopped', 4, 'SHUTOFF'],
        [{ 'os-start': null }, 'active', 1, 'ACTIVE'],
      ] as const) {
        assert.equal((await act(id, body)).status, 202);
        const task = Number((await rpc.instance('h1', id))?.task_id);
        await done(task, vm, power);
        assert.equal((await show(id)).status, status);
      }
      assert.match(
        novaErr(await act(id, { shelve: null }), 'badRequest', 400),
        /no such action: shelve/,
      );
      assert.match(
        novaErr(await act(id, { reboot: { type: 'WARM' } }), 'badRequest', 400),
        /reboot\.type/,
      );
      assert.match(novaErr(await act(id, { pause: 3 }), 'badRequest', 400), /pause/);
      assert.match(
        novaErr(await act(id, { constructor: null }), 'badRequest', 400),
        /no such action: constructor/,
      );
      assert.equal(
        novaErr(
          await act('00000000-0000-4000-8000-000000000000', { pause: null }),
          'itemNotFound',
          404,
        ),
        'Instance 00000000-0000-4000-8000-000000000000 could not be found.',
      );
      advance(DOWN + 1);
      assert.match(
        novaErr(await act(id, { pause: null }), 'conflictingRequest', 409),
        /compute agent on h1 is not alive/,
      );
      assert.equal((await show(id))['OS-EXT-STS:task_state'], null, 'no task was started');
    });

    test('console output: a call to the host queue, answered by the agent; 503 when it is not', async () => {
      await report('h1');
      await report('h3', { memory_mb: 1024 });
      const id = await boot();
      const r = await act(id, { 'os-getConsoleOutput': { length: 2 } });
      assert.equal(r.status, 200, r.raw);
      assert.deepEqual(r.body, { output: 'line two\nline three\n' });
      const all = await act(id, { 'os-getConsoleOutput': { length: null } });
      assert.deepEqual(all.body, { output: CONSOLE });
      const asked = received.filter((x) => x.message.method === 'get_console_output');
      assert.deepEqual(
        asked.map((x) => [x.queue, x.message.args]),
        [
          ['compute_agent.h1', { instance_id: id, length: 2 }],
          ['compute_agent.h1', { instance_id: id }],
        ],
      );
      // h3 reports but nothing consumes its queue: the call times out.
      await report('h1', { memory_mb: 600 });
      await report('h3', { memory_mb: 8192 });
      const lost = await boot();
      assert.equal((await show(lost))['OS-EXT-SRV-ATTR:host'], 'h3');
      const timeout = await act(lost, { 'os-getConsoleOutput': {} });
      assert.match(
        novaErr(timeout, 'serviceUnavailable', 503),
        /compute agent on h3 did not answer/,
      );
    });

    test('delete: through the agent while it lives, locally when it is dead', async () => {
      await report('h1');
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const id = await boot({ networks: [{ uuid: h.net.n.id }, { port: own.id }] });
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
      });
      const made = (await portsOf(id)).find((p) => p.id !== own.id) as Port;
      received.length = 0;
      assert.equal((await call('DELETE', `/servers/${id}`, undefined, MEMBER)).status, 204);
      await waitHint('h1', id, 2);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      assert.deepEqual(await rpc.hostInstances('h1'), [id], "still the host's until it reports");
      assert.equal((await rpc.instance('h1', id))?.task_state, 'deleting');
      await update({ host: 'h1', instance_id: id, power_state: 0, deleted: true });
      assert.equal((await call('GET', `/servers/${id}`)).status, 404);
      assert.deepEqual(await rpc.hostInstances('h1'), []);
      assert.equal(await rpc.instance('h1', id), null);
      assert.equal((await call('GET', `/v2.0/ports/${made.id}`)).status, 404);
      const kept = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(kept.device_id, '');
      assert.equal(kept['binding:host_id'], '');
      await waitFor(
        'the DHCP agent hinted of the released ports',
        () => hints('dhcp_agent.n1', 'network', h.net.n.id).length > 0,
      );
      await update({ host: 'h1', instance_id: id, power_state: 0, deleted: true });
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 404);

      const second = await boot({ networks: [{ uuid: h.net.n.id }] });
      assert.equal((await portsOf(second)).length, 1);
      await waitHint('h1', second, 1);
      advance(DOWN + 1);
      assert.equal((await call('DELETE', `/servers/${second}`)).status, 204);
      assert.equal((await call('GET', `/servers/${second}`)).status, 404, 'deleted at once');
      assert.deepEqual(await portsOf(second), []);
      assert.deepEqual(
        hints('compute_agent.h1', 'instance', second).map(
          (h) => h.message.method === 'hint' && h.message.args.revision,
        ),
        [1],
        'no delete hint to a dead agent',
      );
      assert.deepEqual(await rpc.hostInstances('h1'), [], 'the resync will remove it');
      const listed = (await call('GET', '/servers')).body as { servers: Body[] };
      assert.equal(listed.servers.length, 0);
    });

    test('a delete while the server is still being scheduled is local; the hand-over in flight releases its ports', async () => {
      await report('h1');
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const { id, host } = await h.placeOnly(own.id);
      assert.equal(host, 'h1');
      assert.equal((await portsOf(id)).length, 2);
      assert.deepEqual(await rpc.hostInstances('h1'), [], "not yet the host's");
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      assert.equal((await call('GET', `/servers/${id}`)).status, 404, 'deleted at once, locally');
      assert.deepEqual(await portsOf(id), []);
      assert.equal((await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port')).device_id, '');
      // The hand-over that was under way goes on: the task moved on, so it releases what it made.
      const deps = { db: h.db, broker: h.api, log: silentLogger(), clock: h.clock };
      const nics: Nic[] = [{ kind: 'network', networkId: h.net.n.id }];
      await handOverInstance(deps, id, host, nics);
      assert.deepEqual(await portsOf(id), []);
      assert.equal(await rpc.instance('h1', id), null);
      assert.equal(hints('compute_agent.h1', 'instance', id).length, 0, 'the host is never told');
    });
  });
}
