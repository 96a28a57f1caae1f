/**
 * The production VIF path (`[ovs] vswitchd_netns` unset), against the real libvirtd and the
 * host's real Open vSwitch: the domain XML's `<virtualport type='openvswitch'>` makes
 * libvirt add the tap to the integration bridge with the port id as `iface-id`, the MAC as
 * `attached-mac` and the instance uuid as `vm-id`; the agent's observation (host/ovs/ports
 * findPorts, by tap name) finds it and its plan (vif-plan.ts) checks it with no steps;
 * destroying the domain removes the OVS port again, and an unplug planned from rows seen
 * before the destroy still applies (removing nothing).
 *
 * The bridge is a test-only userspace bridge with no uplink and no address, removed at the
 * end: nothing reaches the machine's network. The lab tests cover the other mode.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { instanceName, renderDomainXml } from '../../agents/compute/domain.ts';
import { observeVifs } from '../../agents/compute/vif.ts';
import { planVifs, unplugStep, VifError } from '../../agents/compute/vif-plan.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { portDevice } from '../../host/ip/names.ts';
import {
  createLibvirtClient,
  DomainCreateFlags,
  type LibvirtClient,
} from '../../host/libvirt/client.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { findPorts, transactApplied } from '../../host/ovs/ports.ts';
import { runCommand } from '../helpers/cluster.ts';
import { buildTestGuest } from '../helpers/guest.ts';

const OVSDB = 'unix:/var/run/openvswitch/db.sock';
const vsctl = (...args: string[]) => runCommand(['ovs-vsctl', '--timeout=10', ...args]);

describe('VIFs plugged by libvirt into the host OVS (production mode)', {
  timeout: 120_000,
}, () => {
  const bridge = `kt${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'kumo-vif-'));
  let libvirt: LibvirtClient;
  let ovsdb: OvsdbClient;
  let domainName = '';

  before(async () => {
    chmodSync(dir, 0o755);
    const show = await vsctl('show');
    if (show.code !== 0)
      throw new Error(
        `Open vSwitch is not running here (start it: kumo_start_ovs): ${show.stderr}`,
      );
    const add = await vsctl(
      'add-br',
      bridge,
      '--',
      'set',
      'Bridge',
      bridge,
      'datapath_type=netdev',
    );
    assert.equal(add.code, 0, add.stderr);
    libvirt = await createLibvirtClient({ uri: 'qemu:///system', timeoutMs: 120_000 });
    ovsdb = await createOvsdbClient({ socket: OVSDB });
  });
  after(async () => {
    if (domainName) {
      await runCommand(['virsh', '-c', 'qemu:///system', 'destroy', domainName]);
      await runCommand(['virsh', '-c', 'qemu:///system', 'undefine', domainName]);
    }
    await vsctl('--if-exists', 'del-br', bridge);
    await libvirt?.close();
    await ovsdb?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('libvirt plugs the tap with iface-id, attached-mac and vm-id; destroy unplugs it', async () => {
    const guest = await buildTestGuest();
    const uuid = randomUUID();
    const portId = randomUUID();
    const mac = 'fa:16:3e:12:34:56';
    domainName = instanceName(randomInt(0x10000000, 0xffffffff));
    const xml = renderDomainXml({
      uuid,
      name: domainName,
      displayName: 'vif-test',
      flavor: { vcpus: 1, ramMiB: 128 },
      virtType: 'qemu',
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: `${guest.cmdline} kumo.nodhcp`,
      nics: [{ portId, mac, vif: 'ovs', bridge, mtu: 1450 }],
      consoleLog: join(dir, 'console.log'),
      metadata: { flavorName: 'm1.tiny', imageId: randomUUID(), created: new Date().toISOString() },
    });
    const dom = await libvirt.defineXml(xml);
    await libvirt.create(dom, DomainCreateFlags.START_PAUSED);

    const tap = portDevice('tap', portId);
    const rows = await findPorts(ovsdb, { names: [tap], vmUuid: uuid });
    assert.deepEqual(
      rows.map((r) => [r.name, r.ifaceId, r.bridge]),
      [[tap, portId, bridge]],
    );
    const ids = await vsctl('get', 'Interface', tap, 'external_ids');
    assert.equal(ids.code, 0, ids.stderr);
    assert.match(ids.stdout, new RegExp(`attached-mac="${mac}"`));
    assert.match(ids.stdout, new RegExp(`vm-id="${uuid}"`));
    assert.equal((await vsctl('port-to-br', tap)).stdout.trim(), bridge);
    const target = { vmUuid: uuid, bridge, nics: [{ portId, mac, tap, mtu: 1450 }] };
    const deps = { runner: createCommandRunner(), ovsdb: async () => ovsdb };
    assert.deepEqual(planVifs(target, await observeVifs(deps, target)), [], 'ovs mode: checked');

    await libvirt.destroy(dom);
    assert.deepEqual(await findPorts(ovsdb, { names: [tap] }), [], 'libvirt removed the port');
    assert.throws(() => planVifs({ ...target }, { ports: [], taps: {} }), VifError);
    // a teardown planned before the destroy still applies: the row is gone, nothing fails
    const step = unplugStep(rows, 'test');
    assert.equal(step.kind, 'ovsdb');
    if (step.kind === 'ovsdb') await transactApplied(ovsdb, step.ops);
    assert.equal((await vsctl('br-exists', bridge)).code, 0, 'the bridge is left');
    await libvirt.undefine(dom);
    domainName = '';
  });
});
