/**
 * Security groups end to end on the two-host lab (the world: sg-lab-world.ts): real kumo-api, one kumo-ovs-agent per
 * host, stand-in VMs in namespaces. T (h1) is in its project's `default` group; on h2, M
 * is another member of `default`, N is in a group `other` (egress only) and O has port
 * security disabled. The seed's three rules (ICMP, TCP 22, TCP 80 from anywhere) go on
 * `default`.
 *
 * Invariant under test: what passes is exactly what the rules, the membership and the
 * port's own addresses allow — as rules and members change, across an agent's kill -9,
 * and unchanged by requests the API refuses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, type Cluster } from '../helpers/cluster.ts';
import { tempDir, waitFor } from '../helpers/env.ts';
import {
  dhcpLease,
  type Endpoint,
  type Lab,
  type LabHost,
  writeUdhcpcScript,
} from '../helpers/lab.ts';
import { refusals } from '../helpers/neutron-refusals.ts';
import {
  dhcpServer,
  flowsOf,
  ingress,
  neutron,
  probes,
  type SecurityGroup,
  type SgPort,
  type SgRule,
  stableFlows,
} from '../helpers/sg-lab.ts';
import { buildSgWorld, type SgWorld } from '../helpers/sg-lab-world.ts';
import { tcpConnect } from '../helpers/tcp-peer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('security groups on a two-host lab', { timeout: 300_000 }, () => {
  let w: SgWorld;
  let lab: Lab;
  let c: Cluster;
  let api: ReturnType<typeof neutron>;
  let p: ReturnType<typeof probes>;
  const rules: Record<string, SgRule> = {};
  const groups = () => w.groups as Record<'default' | 'other' | 'g2', SecurityGroup>;
  const ports = () => w.ports as Record<'T' | 'M' | 'N' | 'O', SgPort>;
  const addRule = async (name: string, body: Record<string, unknown>) => {
    rules[name] = await api.create<SgRule>('security_group_rule', body);
  };
  const ep = (name: string) => w.eps[name] as Endpoint;
  const ipOf = (name: string) => ep(name).ip;
  /** Waits for `what` to hold (the agents apply changes asynchronously). */
  const until = (what: string, fn: () => Promise<boolean>) => waitFor(what, fn, 20_000, 300);

  before(async () => {
    w = await buildSgWorld();
    ({ lab, c } = w);
    api = neutron(c);
    p = probes(lab);
  });
  after(async () => {
    await w?.destroy();
  });

  test("the seed's three rules let in exactly ICMP, TCP 22 and TCP 80 from a non-member", async () => {
    const [N, T] = [ep('N'), ipOf('T')];
    await until('a non-member kept out by the default group', async () => !(await p.pings(N, T)));
    assert.equal(await p.connects(N, T, 22), false, 'no rule for 22 yet');
    const g = groups().default.id as string;
    await addRule('icmp', ingress(g, 'icmp'));
    await addRule('tcp22', ingress(g, 'tcp', 22));
    await addRule('tcp80', ingress(g, 'tcp', 80));
    await until('TCP 80 open', () => p.connects(N, T, 80));
    assert.ok(await p.pings(N, T), 'ICMP passes');
    assert.ok(await p.connects(N, T, 22), 'TCP 22 connects');
    assert.equal(await p.connects(N, T, 8080), false, 'TCP 8080 refused');
  });

  test('the default group: members reach each other on any port, a non-member does not', async () => {
    assert.ok(await p.connects(ep('M'), ipOf('T'), 8080), 'member M → T:8080');
    assert.ok(await p.connects(ep('T'), ipOf('O'), 8080), 'egress from T is open');
    assert.equal(await p.connects(ep('N'), ipOf('T'), 8080), false, 'non-member N → T:8080');
    assert.equal(await p.connects(ep('N'), ipOf('T'), 9000), false, 'non-member N → T:9000');
  });

  test('a remote_group_id rule follows membership as a port joins and leaves the group', async () => {
    const [N, T] = [ep('N'), ipOf('T')];
    w.groups.g2 = await api.create<SecurityGroup>('security_group', { name: 'g2' });
    await addRule(
      'g2-9000',
      ingress(groups().default.id as string, 'tcp', 9000, { remote_group_id: groups().g2.id }),
    );
    await sleep(1500);
    assert.equal(await p.connects(N, T, 9000), false, 'N is not in g2 yet');
    const other = groups().other.id as string;
    await api.update('port', ports().N.id as string, { security_groups: [other, groups().g2.id] });
    await until('N, now in g2, reaches T:9000', () => p.connects(N, T, 9000));
    await api.update('port', ports().N.id as string, { security_groups: [other] });
    await until('N, out of g2, refused on T:9000', async () => !(await p.connects(N, T, 9000)));
    assert.equal(await p.connects(N, T, 8080), false, 'still nothing else');
  });

  test('removing a rule cuts its established connections; adding one leaves them alone', async () => {
    const [N, T] = [ep('N'), ipOf('T')];
    const on80 = await tcpConnect(N.netns, T, 80);
    const on22 = await tcpConnect(N.netns, T, 22);
    const member = await tcpConnect(ep('M').netns, T, 8080);
    try {
      for (const conn of [on80, on22, member]) assert.ok(await conn.ask(), 'answers at first');
      await api.remove('security_group_rule', rules.tcp80?.id as string);
      await until('the held connection on 80 cut', async () => (await on80.ask(1000)) === null);
      assert.equal(await on80.ask(3000), null, 'and it stays cut');
      assert.equal(await p.connects(N, T, 80), false, 'no new connection on 80');
      assert.ok(await on22.ask(), 'the connection on 22 (its rule kept) still answers');
      await addRule('tcp80', ingress(groups().default.id as string, 'tcp', 80));
      await until('80 open again', () => p.connects(N, T, 80));
      assert.ok(await on22.ask(), 'the connection on 22 survives an added rule');
      assert.ok(await member.ask(), "a member's connection survives an added rule");
    } finally {
      for (const conn of [on80, on22, member]) conn.close();
    }
  });

  test('a spoofed source IP is dropped; an allowed address pair passes; security off passes', async () => {
    const [N, O, T] = [ep('N'), ep('O'), ep('T')];
    const [spoofN, spoofO] = ['10.0.0.99', '10.0.0.98'];
    await p.addAddress(N, spoofN);
    await p.addAddress(O, spoofO);
    await p.pinNeighbour(T, spoofN, N.mac);
    await p.pinNeighbour(T, spoofO, O.mac);
    await p.pinNeighbour(N, T.ip, T.mac);
    await p.pinNeighbour(O, T.ip, T.mac);
    const seen = await p.inEchos(T);
    assert.equal(await p.pings(N, T.ip, { source: spoofN, count: 3 }), false);
    assert.equal((await p.inEchos(T)) - seen, 0, 'no echo request from a spoofed source reached T');
    assert.ok(await p.pings(O, T.ip, { source: spoofO }), 'security off: any source passes');
    await api.update('port', ports().N.id as string, {
      allowed_address_pairs: [{ ip_address: spoofN }],
    });
    await until('the address pair passes', () => p.pings(N, T.ip, { source: spoofN }));
    assert.ok(await p.pings(N, T.ip), "N's own address still passes");
  });

  test('a spoofed source MAC is dropped (security off: passes)', async () => {
    const [N, O, T] = [ep('N'), ep('O'), ep('T')];
    const [fakeN, fakeO] = ['02:00:00:00:5e:01', '02:00:00:00:5e:02'];
    try {
      await p.pinNeighbour(N, T.ip, T.mac);
      await p.pinNeighbour(O, T.ip, T.mac);
      await p.pinNeighbour(T, N.ip, fakeN);
      await p.pinNeighbour(T, O.ip, fakeO);
      await p.setMac(N, fakeN);
      await p.setMac(O, fakeO);
      const seen = await p.inEchos(T);
      assert.equal(await p.pings(N, T.ip, { count: 3 }), false);
      assert.equal((await p.inEchos(T)) - seen, 0, 'no echo request from a spoofed MAC reached T');
      assert.ok(await p.pings(O, T.ip), 'security off: any MAC passes');
    } finally {
      await p.setMac(N, N.mac);
      await p.setMac(O, O.mac);
      await p.forgetNeighbour(T, N.ip);
      await p.forgetNeighbour(T, O.ip);
    }
    assert.ok(await p.pings(N, T.ip), 'its own MAC passes again');
  });

  test('an ARP reply for another address is dropped (security off: it arrives)', async () => {
    const [N, O, T] = [ep('N'), ep('O'), ep('T')];
    const other = '10.0.0.77';
    await p.acceptArp(T);
    await p.arpReply(N, other);
    await sleep(500);
    assert.equal(await p.neighbour(T, other), null, "T's neighbour table stays clean");
    await p.arpReply(O, other);
    await until(
      "security off: the reply reaches T's table",
      async () => (await p.neighbour(T, other)) === O.mac,
    );
    await p.forgetNeighbour(T, other);
  });

  test('a VM may not answer DHCP as a server (security off: it may)', async () => {
    const [N, O, T] = [ep('N'), ep('O'), ep('T')];
    const dir = tempDir('kumo-sg-dhcp-');
    const script = writeUdhcpcScript(dir.path);
    // N hears DISCOVERs (its group lets udp 67 in); what it sends back must not leave.
    await addRule('n-dhcp', ingress(groups().other.id as string, 'udp', 67));
    const fromN = dhcpServer(N, dir.path);
    try {
      let lease: Record<string, string> | null = null;
      await until('N to hear a DISCOVER and offer', async () => {
        lease = await dhcpLease(lab, T, script).catch(() => null);
        return lease !== null || /sending OFFER/i.test(fromN.log());
      });
      assert.equal(lease, null, "no lease from N's offer");
      await assert.rejects(dhcpLease(lab, T, script), 'still none once N offers');
    } finally {
      fromN.stop();
    }
    const fromO = dhcpServer(O, dir.path);
    try {
      const lease = await waitFor(
        'a lease from O',
        () => dhcpLease(lab, T, script).catch(() => null),
        20_000,
        300,
      );
      assert.equal(lease.serverid, O.ip);
    } finally {
      fromO.stop();
      dir.cleanup();
    }
  });

  test('a port with port security disabled takes any connection', async () => {
    assert.ok(await p.connects(ep('N'), ipOf('O'), 8080), 'N → O:8080');
    assert.ok(await p.connects(ep('M'), ipOf('O'), 8080), 'M → O:8080');
    assert.ok(await p.connects(ep('T'), ipOf('O'), 8080), 'T → O:8080 across hosts');
  });

  test('refused requests change nothing in the API nor in br-int on either host', async () => {
    const g = groups().default.id as string;
    const state = async () => ({
      groups: await api.list('security_group'),
      rules: await api.list('security_group_rule'),
      ports: await api.list('port'),
      flows: await Promise.all(lab.hosts.map((h) => flowsOf(h))),
    });
    await stableFlows(lab.hosts);
    const first = await state();
    const refused = refusals(async (token, method, url, payload) => {
      const res = await c.http(method, url, payload, token);
      return { status: res.status, body: res.body ?? {} };
    }, state);
    const rule = (more: Record<string, unknown>) => ({
      security_group_rule: { ...ingress(g, 'tcp', 7000), ...more },
    });
    const R = '/v2.0/security-group-rules';
    const other = groups().other.id as string;
    // [status, type, method, url, body, Neutron's message]
    const cases: [number, string, string, string, unknown, RegExp][] = [
      [
        400,
        'SecurityGroupInvalidPortRange',
        'POST',
        R,
        rule({ port_range_min: 2000, port_range_max: 1000 }),
        /port_range_min must be <= port_range_max/,
      ],
      [
        400,
        'SecurityGroupRuleParameterConflict',
        'POST',
        R,
        rule({ remote_ip_prefix: '2001:db8::/64' }),
        /Conflicting value ethertype IPv4 for CIDR 2001:db8::\/64/,
      ],
      [
        400,
        'SecurityGroupRuleInvalidProtocol',
        'POST',
        R,
        rule({ protocol: 'foo' }),
        /protocol foo not supported/,
      ],
      [
        409,
        'SecurityGroupRuleExists',
        'POST',
        R,
        { security_group_rule: ingress(g, 'tcp', 22) },
        new RegExp(`already exists. Rule id is ${rules.tcp22?.id}`),
      ],
      [
        409,
        'SecurityGroupInUse',
        'DELETE',
        `/v2.0/security-groups/${other}`,
        undefined,
        new RegExp(`Security Group ${other} in use`),
      ],
      [
        400,
        'PortSecurityAndIPRequiredForSecurityGroups',
        'PUT',
        `/v2.0/ports/${ports().O.id}`,
        { port: { security_groups: [g] } },
        /Port security must be enabled/,
      ],
    ];
    for (const [status, type, method, url, body, message] of cases)
      assert.match(await refused(status, type, ADMIN_TOKEN, method, url, body), message);
    await sleep(2000);
    assert.deepEqual(await state(), first, 'nothing changed, also after the agents had time');
  });

  test('kill -9 of the agent while traffic flows: the rules stay in force; restart converges', async () => {
    const [h1] = lab.hosts as [LabHost];
    const [N, T] = [ep('N'), ipOf('T')];
    const [flows] = await stableFlows(lab.hosts);
    const pinging = lab.exec(N.netns, ['ping', '-c', '40', '-i', '0.2', '-W', '1', T]);
    await sleep(1000);
    await c.stop(w.agents.get('h1'), 'SIGKILL');
    assert.equal(await p.connects(N, T, 8080), false, 'TCP 8080 refused during the outage');
    assert.ok(await p.connects(N, T, 22), 'TCP 22 still connects during the outage');
    const proc = w.startAgent(h1);
    const log = `kumo-ovs-agent-${w.hostName(h1)}`;
    await until('the restarted agent to sync', async () =>
      c
        .log(log)
        .split('\n')
        .some((l) => l.includes(`"pid":${proc.child.pid},`) && l.includes('"msg":"l2 sync"')),
    );
    const out = await pinging;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    assert.ok(m, out);
    assert.ok(Number(m[1]) - Number(m[2]) <= 1, `lost at most one reply: ${m[0]}`);
    await until(
      'flows converge to the same set',
      async () => JSON.stringify(await flowsOf(h1)) === JSON.stringify(flows),
    );
    assert.equal(await p.connects(N, T, 8080), false, 'TCP 8080 still refused');
    assert.ok(await p.connects(N, T, 80), 'TCP 80 still open');
    assert.equal(proc.child.exitCode, null);
  });
});
