/**
 * The multi-host lab itself: two simulated hosts joined by a hand-built VXLAN tunnel
 * (what kumo-ovs-agent automates in issue #3) pass traffic between endpoints, and
 * destroy() leaves no namespace or daemon behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';

let lab: Lab;

before(async () => {
  lab = await createLab({ hosts: 2 });
});
after(async () => {
  await lab?.destroy();
});

async function wire(host: LabHost, peer: LabHost) {
  await host.vsctl([
    'add-br',
    'br-int',
    '--',
    'set',
    'bridge',
    'br-int',
    'datapath_type=netdev',
    '--',
    'add-br',
    'br-tun',
    '--',
    'set',
    'bridge',
    'br-tun',
    'datapath_type=netdev',
    'fail_mode=secure',
    '--',
    'add-port',
    'br-int',
    'patch-tun',
    '--',
    'set',
    'Interface',
    'patch-tun',
    'type=patch',
    'options:peer=patch-int',
    '--',
    'add-port',
    'br-tun',
    'patch-int',
    '--',
    'set',
    'Interface',
    'patch-int',
    'type=patch',
    'options:peer=patch-tun',
    '--',
    'add-port',
    'br-tun',
    'vx',
    '--',
    'set',
    'Interface',
    'vx',
    'type=vxlan',
    `options:remote_ip=${peer.ip}`,
    `options:local_ip=${host.ip}`,
    'options:key=flow',
  ]);
  await host.ofctl(['add-flow', 'br-tun', 'in_port=patch-int,actions=set_tunnel:100,output:vx']);
  await host.ofctl(['add-flow', 'br-tun', 'in_port=vx,tun_id=100,actions=output:patch-int']);
}

test('two lab hosts: endpoints ping across a VXLAN tunnel over the underlay', async () => {
  const [h1, h2] = lab.hosts as [LabHost, LabHost];
  await lab.exec(h1.netns, ['ping', '-c', '1', '-W', '2', h2.ip]);
  await wire(h1, h2);
  await wire(h2, h1);
  const a = await lab.endpoint(h1, {
    ifaceId: 'port-a',
    mac: 'fa:16:3e:00:00:01',
    cidr: '10.0.0.1/24',
  });
  const b = await lab.endpoint(h2, {
    ifaceId: 'port-b',
    mac: 'fa:16:3e:00:00:02',
    cidr: '10.0.0.2/24',
  });
  const out = await lab.exec(a.netns, ['ping', '-c', '3', '-i', '0.2', '-W', '2', b.ip]);
  assert.match(out, / 0% packet loss/);
  const ids = await h1.vsctl(['--bare', '--columns=external_ids', 'find', 'Interface', 'name=ep1']);
  assert.match(ids, /iface-id=port-a/);
});

test('destroy() removes every namespace the lab made', async () => {
  const other = await createLab({ hosts: 1 });
  const prefix = other.prefix;
  await other.destroy();
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.ok(!left.includes(prefix), `namespaces left behind: ${left}`);
  const procs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  assert.ok(!procs.includes(`kumo-lab-${prefix}`), 'no ovsdb-server or ovs-vswitchd left');
});
