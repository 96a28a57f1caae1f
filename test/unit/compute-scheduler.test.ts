/**
 * The compute scheduler's pure planning: capacity from an agent's configurations (ratios
 * default to 1.0, reserve to 0), free resources with allocation ratios and reserved
 * memory, the most-free-RAM pick with ties by host name, and the reasons a host is
 * refused (dead, admin-down, no resources, too small); and the compute RPC's pure power
 * sync, whole, against Nova's _sync_instance_power_state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { powerSync } from '../../api/rpc-compute.ts';
import {
  type ComputeCandidate,
  capacityOf,
  freeOf,
  planPlacement,
} from '../../api/scheduler/compute.ts';
import { POWER_STATE, VM_STATES, type VmState } from '../../contracts/servers.ts';

const none = { vcpus: 0, ramMb: 0, diskGb: 0 };
const host = (name: string, over: Partial<ComputeCandidate> = {}): ComputeCandidate => ({
  host: name,
  alive: true,
  adminUp: true,
  capacity: capacityOf({ vcpus: 4, memory_mb: 8192, local_gb: 100 }),
  used: none,
  ...over,
});
const tiny = { vcpus: 1, ramMb: 512, diskGb: 1 };

describe('capacityOf and freeOf', () => {
  test('missing ratios are 1.0 and a missing reserve is 0; missing sizes mean no capacity', () => {
    assert.deepEqual(capacityOf({ vcpus: 8, memory_mb: 16384, local_gb: 200 }), {
      vcpus: 8,
      memoryMb: 16384,
      localGb: 200,
      cpuRatio: 1,
      ramRatio: 1,
      diskRatio: 1,
      reservedMb: 0,
    });
    assert.equal(capacityOf({ vcpus: 8, memory_mb: 16384 }), undefined);
    assert.equal(capacityOf({ vcpus: '8', memory_mb: 1, local_gb: 1 }), undefined);
    assert.equal(capacityOf({ vcpus: -1, memory_mb: 1, local_gb: 1 }), undefined);
    assert.equal(
      capacityOf({ vcpus: 1, memory_mb: 1, local_gb: 1, cpu_allocation_ratio: 0 })?.cpuRatio,
      1,
      'a zero ratio is treated as missing',
    );
  });

  test('ratios multiply, reserved memory comes off before the RAM ratio', () => {
    const c = capacityOf({
      vcpus: 4,
      memory_mb: 8192,
      local_gb: 100,
      cpu_allocation_ratio: 4,
      ram_allocation_ratio: 1.5,
      disk_allocation_ratio: 2,
      reserved_host_memory_mb: 512,
    });
    assert.ok(c);
    assert.deepEqual(freeOf(c, { vcpus: 3, ramMb: 1000, diskGb: 20 }), {
      vcpus: 13,
      ramMb: (8192 - 512) * 1.5 - 1000,
      diskGb: 180,
    });
  });
});

describe('planPlacement', () => {
  test('the host with the most free RAM wins; ties go to the first host name', () => {
    const hosts = [
      host('c', { used: { vcpus: 1, ramMb: 1024, diskGb: 1 } }),
      host('b'),
      host('a', { used: { vcpus: 0, ramMb: 2048, diskGb: 0 } }),
    ];
    assert.deepEqual(planPlacement(hosts, tiny), { host: 'b' });
    assert.deepEqual(planPlacement([host('z'), host('y'), host('x')], tiny), { host: 'x' });
  });

  test('dead, admin-down and resource-less agents are never picked, with reasons', () => {
    const p = planPlacement(
      [
        host('a', { alive: false }),
        host('b', { adminUp: false }),
        host('c', { capacity: undefined }),
      ],
      tiny,
    );
    assert.equal(p.host, null);
    assert.ok(p.host === null);
    assert.deepEqual(p.reasons, [
      'a: compute agent is not alive',
      'b: compute agent is administratively down',
      'c: compute agent reports no resources',
    ]);
    assert.deepEqual(planPlacement([], tiny), {
      host: null,
      reasons: ['no compute agent is registered'],
    });
  });

  test('each of vcpus, RAM and disk must fit; usage counts against capacity', () => {
    const full = host('a', { used: { vcpus: 4, ramMb: 0, diskGb: 0 } });
    const p = planPlacement([full], tiny);
    assert.ok(p.host === null);
    assert.deepEqual(p.reasons, ['a: vcpus 0 free < 1']);
    const small = host('b', { used: { vcpus: 0, ramMb: 8000, diskGb: 100 } });
    const q = planPlacement([small], tiny);
    assert.ok(q.host === null);
    assert.deepEqual(q.reasons, ['b: ramMb 192 free < 512, diskGb 0 free < 1']);
    // Exactly full fits.
    const exact = host('c', { used: { vcpus: 3, ramMb: 8192 - 512, diskGb: 99 } });
    assert.deepEqual(planPlacement([exact], tiny), { host: 'c' });
    // The cpu ratio lets 4 cores take 8 vcpus.
    const ratio = host('d', {
      capacity: capacityOf({ vcpus: 4, memory_mb: 8192, local_gb: 100, cpu_allocation_ratio: 2 }),
      used: { vcpus: 7, ramMb: 0, diskGb: 0 },
    });
    assert.deepEqual(planPlacement([ratio], tiny), { host: 'd' });
  });

  test('the pick does not depend on the order the agents are listed in', () => {
    const hosts = [host('b'), host('a'), host('c', { used: { vcpus: 0, ramMb: 1, diskGb: 0 } })];
    for (const order of [hosts, [...hosts].reverse(), [hosts[2], hosts[0], hosts[1]]])
      assert.deepEqual(planPlacement(order as ComputeCandidate[], tiny), { host: 'a' });
  });
});

describe("powerSync (Nova's _sync_instance_power_state, no task pending)", () => {
  const { NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED } = POWER_STATE;
  const ALL = [NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED];
  /** vm_state → power → the new vm_state ('ignored': left and logged; absent: no change). */
  const NOVA: Partial<Record<VmState, Record<number, VmState | 'ignored'>>> = {
    active: {
      [SHUTDOWN]: 'stopped',
      [CRASHED]: 'stopped',
      [SUSPENDED]: 'stopped',
      [PAUSED]: 'ignored',
      [NOSTATE]: 'ignored',
    },
    paused: { [SHUTDOWN]: 'stopped', [CRASHED]: 'stopped' },
    stopped: { [RUNNING]: 'ignored', [PAUSED]: 'ignored', [SUSPENDED]: 'ignored' },
  };

  test('every vm_state and power state, against the table', () => {
    for (const vm of VM_STATES)
      for (const power of ALL) {
        const want = NOVA[vm]?.[power];
        const got = powerSync(vm, power);
        const label = `${vm} / power ${power}`;
        if (want === undefined) assert.equal(got, null, label);
        else if (want === 'ignored') assert.ok(got !== null && 'ignored' in got, label);
        else assert.deepEqual(got, { to: want }, label);
      }
  });

  test('building, suspended, error and deleted never follow the hypervisor', () => {
    for (const vm of ['building', 'suspended', 'error', 'deleted'] as const)
      for (const power of ALL) assert.equal(powerSync(vm, power), null, `${vm} / ${power}`);
  });
});
