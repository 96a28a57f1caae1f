/**
 * host/ovs/ports.ts against the host's real Open vSwitch: plugging an internal port in
 * one transaction and waiting for ovs-vswitchd (the device exists, with its MAC and MTU,
 * when transactApplied returns), finding ports by name and by vm-uuid, unplugging from
 * the bridge that holds the port only, refusing a bad name before any op, and the wait
 * for an unreachable cfg timing out with a clear error.
 *
 * The bridges are test-only userspace bridges (datapath_type netdev) with unique names,
 * no uplink and no address, removed at the end: nothing reaches the machine's network.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { InvalidNameError } from '../../host/ip/names.ts';
import { createOvsdbClient, type OvsdbClient, OvsdbError, select } from '../../host/ovs/ovsdb.ts';
import {
  findPorts,
  plugOps,
  transactApplied,
  unplugOps,
  type VifSpec,
  waitApplied,
} from '../../host/ovs/ports.ts';
import { runCommand } from '../helpers/cluster.ts';

const OVSDB = 'unix:/var/run/openvswitch/db.sock';
const vsctl = (...args: string[]) => runCommand(['ovs-vsctl', '--timeout=10', ...args]);

interface Link {
  ifname: string;
  address: string;
  mtu: number;
}

async function link(name: string): Promise<Link | undefined> {
  const res = await runCommand(['ip', '-j', 'link', 'show', 'dev', name]);
  if (res.code !== 0) return undefined;
  return (JSON.parse(res.stdout) as Link[])[0];
}

const listPorts = async (bridge: string) =>
  (await vsctl('list-ports', bridge)).stdout.split('\n').filter(Boolean).sort();

describe('host/ovs/ports.ts against the host OVS', { timeout: 60_000 }, () => {
  const tag = randomBytes(3).toString('hex');
  const brA = `kpa${tag}`;
  const brB = `kpb${tag}`;
  let ovsdb: OvsdbClient;

  const vif = (name: string, extra: Partial<VifSpec> = {}): VifSpec => ({
    name,
    kind: 'internal',
    portId: randomUUID(),
    attachedMac: 'fa:16:3e:00:00:01',
    ...extra,
  });

  before(async () => {
    const show = await vsctl('show');
    if (show.code !== 0)
      throw new Error(
        `Open vSwitch is not running here (start it: kumo_start_ovs): ${show.stderr}`,
      );
    for (const br of [brA, brB]) {
      const add = await vsctl('add-br', br, '--', 'set', 'Bridge', br, 'datapath_type=netdev');
      assert.equal(add.code, 0, add.stderr);
    }
    ovsdb = await createOvsdbClient({ socket: OVSDB });
  });
  after(async () => {
    for (const br of [brA, brB]) await vsctl('--if-exists', 'del-br', br);
    await ovsdb?.close();
  });

  test('an internal port exists with its MAC and MTU when transactApplied returns', async () => {
    const name = `kpi${tag}`;
    const spec = vif(name, { mac: 'fa:16:3e:12:34:56', mtu: 1400, vmUuid: randomUUID() });
    const results = await transactApplied(ovsdb, plugOps(brA, [spec]));
    assert.ok(
      results.every((r) => !r.error),
      JSON.stringify(results),
    );
    const dev = await link(name);
    assert.ok(dev, `device ${name} exists as soon as ovs-vswitchd applied the transaction`);
    assert.equal(dev.address, spec.mac);
    assert.equal(dev.mtu, 1400);
    const ids = (await vsctl('get', 'Interface', name, 'external_ids')).stdout;
    assert.match(ids, new RegExp(`iface-id="${spec.portId}"`));
    assert.match(ids, /attached-mac="fa:16:3e:00:00:01"/);
    assert.deepEqual(await listPorts(brA), [name]);
  });

  test('findPorts by name and by vm-uuid; unplugOps removes a port only from its bridge', async () => {
    const vm = randomUUID();
    const [a, b] = [vif(`kpx${tag}`, { vmUuid: vm }), vif(`kpy${tag}`)];
    await transactApplied(ovsdb, plugOps(brA, [a]));
    await transactApplied(ovsdb, plugOps(brB, [b]));

    const byName = await findPorts(ovsdb, { names: [a.name, b.name, `kpz${tag}`] });
    assert.deepEqual(byName.map((p) => [p.name, p.bridge, p.ifaceId]).sort(), [
      [a.name, brA, a.portId],
      [b.name, brB, b.portId],
    ]);
    const byVm = await findPorts(ovsdb, { vmUuid: vm });
    assert.deepEqual(
      byVm.map((p) => [p.name, p.bridge, p.vmUuid, p.attachedMac]),
      [[a.name, brA, vm, a.attachedMac]],
    );

    const ops = unplugOps(byVm);
    assert.ok(
      ops.every((o) => o.op !== 'mutate' || JSON.stringify(o.where) === `[["name","==","${brA}"]]`),
      'only the bridge that holds the port is touched',
    );
    await transactApplied(ovsdb, ops);
    assert.deepEqual(await findPorts(ovsdb, { names: [a.name] }), []);
    assert.ok(!(await listPorts(brA)).includes(a.name));
    assert.deepEqual(await listPorts(brB), [b.name], "the other bridge's port stays");
    assert.equal(await link(a.name), undefined, 'ovs-vswitchd removed the device');
  });

  test('a bad device name is refused before any op is built', async () => {
    const before = await listPorts(brA);
    for (const name of ['bad name', '-leading', 'a;rm -rf', 'x'.repeat(16), '']) {
      assert.throws(() => plugOps(brA, [vif(name)]), InvalidNameError, name);
    }
    assert.deepEqual(await listPorts(brA), before, 'nothing reached OVSDB');
  });

  test('waitApplied times out with a clear error for a cfg ovs-vswitchd never reaches', async () => {
    const [root] = await ovsdb.transact('Open_vSwitch', [select('Open_vSwitch', [], ['cur_cfg'])]);
    const cur = Number(root?.rows?.[0]?.cur_cfg);
    assert.ok(Number.isInteger(cur), JSON.stringify(root));
    const unreachable = cur + 1_000_000;
    await assert.rejects(waitApplied(ovsdb, unreachable, 300), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(`ovs-vswitchd did not apply OVSDB cfg ${unreachable} within 300 ms`),
      );
      assert.ok(
        e.cause instanceof OvsdbError && /timed out/.test(e.cause.message),
        `ovsdb-server's own wait timed out (not the client's deadline): ${e.cause}`,
      );
      return true;
    });
    await waitApplied(ovsdb, cur, 300);
  });
});
