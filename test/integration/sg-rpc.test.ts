/**
 * security_group_info (api/rpc-sg.ts) and the security group hints (api/sg-hints.ts) on
 * both database engines, the hints through the real broker to the OVS agents' host
 * queues of three fake hosts: the seed's rules with protocols as numbers, the default
 * group's members on two hosts with their allowed pairs and IPv6 addresses, canonical
 * and sorted, bad rows left out and logged, absent groups absent; hints reach exactly
 * the hosts whose bound ports a change affects, once per (host, group), and nowhere else.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { ensureDefaultSecurityGroup } from '../../api/db/default-sg.ts';
import type { Db } from '../../api/db/index.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import { securityGroupInfo } from '../../api/rpc-sg.ts';
import { sgMembersChanged, sgRulesChanged } from '../../api/sg-hints.ts';
import { agentTypeByKind } from '../../contracts/agents.ts';
import { SecurityGroupInfoResult } from '../../contracts/l2.ts';
import { EXCHANGE, hostQueue, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Port } from '../../contracts/network.ts';
import { apiQueue } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { waitFor } from '../helpers/env.ts';
import {
  bindGroups,
  dualStackNetwork,
  seedGroup,
  seedPair,
  seedPort,
  seedRule,
} from '../helpers/sg-seed.ts';
import { testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-sg';
const HOSTS = ['h1', 'h2', 'h3'] as const;
const GHOST = '00000000-0000-4000-8000-000000000000';
const OVS_TOPIC = agentTypeByKind('ovs').topic;

interface World {
  seed: string;
  seedRules: Record<string, string>;
  def: string;
  web: string;
  lonely: string;
  deleted: string;
  ports: Record<string, Port>;
}

/** The seed group (with rows no firewall can use), web, lonely, default, a deleted one. */
async function seedGroups(db: Db, world: World) {
  world.def = await ensureDefaultSecurityGroup(db, 'p1', new Date());
  world.seed = await seedGroup(db, 'p1', 'seed');
  const tcp = (port: number) => ({ protocol: 'tcp', min: port, max: port, prefix: '0.0.0.0/0' });
  world.seedRules = {
    icmp: await seedRule(db, world.seed, { protocol: 'icmp', prefix: '0.0.0.0/0' }),
    ssh: await seedRule(db, world.seed, tcp(22)),
    http: await seedRule(db, world.seed, tcp(80)),
    sctp: await seedRule(db, world.seed, {
      protocol: '132',
      ethertype: 'IPv6',
      prefix: 'FD00:0::/16',
    }),
    icmp6: await seedRule(db, world.seed, {
      protocol: 'ipv6-icmp',
      ethertype: 'IPv6',
      min: 128,
      max: 0,
    }),
    bogus: await seedRule(db, world.seed, { protocol: 'bogus' }),
    badPrefix: await seedRule(db, world.seed, { protocol: 'udp', prefix: '10.0.0.1/8' }),
  };
  world.web = await seedGroup(db, 'p1', 'web');
  await seedRule(db, world.web, { protocol: 'tcp', min: 443, max: 443, remote: world.def });
  world.lonely = await seedGroup(db, 'p1', 'lonely');
  await seedRule(db, world.lonely, { protocol: 'udp', min: 53, max: 53 });
  world.deleted = await seedGroup(db, 'p1', 'deleted');
  await seedRule(db, world.deleted, { remote: world.def });
  await db.query('DELETE FROM securitygroups WHERE id = ?', [world.deleted]);
}

/**
 * Ports: a (h1, v4+v6), b (h2), c (unbound), d (h1) in default, a and b also in seed; web
 * (h3) in web; lone (unbound) in lonely; other (h3) in none. Pairs on b and c.
 */
async function seedPorts(db: Db, net: string, world: World) {
  const port = (host: string, ...ips: string[]) => seedPort(db, net, host, ips);
  const p = {
    a: await port('h1', '10.5.0.10', 'fd00:5::a'),
    b: await port('h2', '10.5.0.11'),
    c: await port('', '10.5.0.12'),
    d: await port('h1', '10.5.0.13'),
    web: await port('h3', '10.5.0.20'),
    lone: await port('', '10.5.0.30'),
    other: await port('h3', '10.5.0.40'),
  };
  world.ports = p;
  await bindGroups(db, p.a.id, world.def, world.seed);
  await bindGroups(db, p.b.id, world.def, world.seed);
  await bindGroups(db, p.c.id, world.def);
  await bindGroups(db, p.d.id, world.def);
  await bindGroups(db, p.web.id, world.web);
  await bindGroups(db, p.lone.id, world.lonely);
  await seedPair(db, p.b, '10.9.0.0/24');
  await seedPair(db, p.b, '10.5.0.10');
  await seedPair(db, p.c, 'FD00:5::00C');
  await seedPair(db, p.c, 'not-an-address');
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`security group RPC and hints on ${engine}`, () => {
    const api = testApi(engine, { settings: { adminToken: ADMIN } });
    const received: { queue: string; method: string; args: Record<string, unknown> }[] = [];
    const w = {} as World;

    /** Casts a barrier to every host queue; resolves once each queue has delivered it. */
    async function barrier() {
      const id = randomUUID();
      const arrived = () =>
        HOSTS.every((h) =>
          received.some((r) => r.queue === hostQueue(OVS_TOPIC, h) && r.args.id === id),
        );
      await waitFor(id, async () => {
        for (const h of HOSTS)
          await api.broker.cast(hostQueue(OVS_TOPIC, h), 'hint', { resource: 'tunnels', id });
        return arrived();
      });
    }

    /** The security_group hints `fn` sends, as sorted `host:group` strings. */
    async function hintsOf(fn: () => Promise<void>): Promise<string[]> {
      await barrier();
      const from = received.length;
      await fn();
      await barrier();
      return received
        .slice(from)
        .filter((r) => r.method === 'hint' && r.args.resource !== 'tunnels')
        .map((r) => `${r.queue.slice(OVS_TOPIC.length + 1)}:${String(r.args.id)}`)
        .sort();
    }

    const deps = () => ({ db: api.db, broker: api.broker, log: silentLogger() });

    before(async () => {
      for (const h of HOSTS) {
        const name = hostQueue(OVS_TOPIC, h);
        api.broker.consume(
          { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] },
          async (message, info) => {
            received.push({
              queue: info.queue,
              method: message.method,
              args: message.args as Record<string, unknown>,
            });
          },
        );
      }
      api.broker.consume(
        { ...apiQueue(PLUGIN_TOPIC), prefetch: 4 },
        createRpcHandler({ db: api.db, broker: api.broker, log: silentLogger() }),
      );
      await seedGroups(api.db, w);
      await seedPorts(api.db, await dualStackNetwork(api.app, ADMIN), w);
    });

    test('the seed group: rules with protocol numbers, bad rows left out and logged', async () => {
      const warned: unknown[] = [];
      const log = { warn: (o: unknown) => warned.push(o) } as never;
      const info = await securityGroupInfo(api.db, { host: 'h1', security_groups: [w.seed] }, log);
      assert.deepEqual(SecurityGroupInfoResult.parse(info), info);
      const r = w.seedRules;
      const any = { port_range_min: null, port_range_max: null, remote_group_id: null };
      const ingress = (id: string, rest: object) => ({ id, direction: 'ingress', ...any, ...rest });
      const expected = [
        ingress(r.icmp as string, {
          ethertype: 'IPv4',
          protocol: 1,
          remote_ip_prefix: '0.0.0.0/0',
        }),
        ingress(r.ssh as string, {
          ethertype: 'IPv4',
          protocol: 6,
          port_range_min: 22,
          port_range_max: 22,
          remote_ip_prefix: '0.0.0.0/0',
        }),
        ingress(r.http as string, {
          ethertype: 'IPv4',
          protocol: 6,
          port_range_min: 80,
          port_range_max: 80,
          remote_ip_prefix: '0.0.0.0/0',
        }),
        ingress(r.sctp as string, {
          ethertype: 'IPv6',
          protocol: 132,
          remote_ip_prefix: 'fd00::/16',
        }),
        ingress(r.icmp6 as string, {
          ethertype: 'IPv6',
          protocol: 58,
          port_range_min: 128,
          port_range_max: 0,
          remote_ip_prefix: null,
        }),
      ].sort((a, b) => (a.id < b.id ? -1 : 1));
      assert.deepEqual(info, { groups: [{ id: w.seed, rules: expected }], members: [] });
      const left = warned.map((o) => (o as { securityGroupRuleId: string }).securityGroupRuleId);
      assert.deepEqual(left.sort(), [r.bogus, r.badPrefix].sort());
    });

    test('the default group: its rules and members on two hosts, pairs, IPv6', async () => {
      const warned: unknown[] = [];
      const log = { warn: (o: unknown) => warned.push(o) } as never;
      const info = await securityGroupInfo(api.db, { host: 'h2', security_groups: [w.def] }, log);
      assert.deepEqual(SecurityGroupInfoResult.parse(info), info);
      const [group] = info.groups;
      assert.equal(info.groups.length, 1);
      assert.equal(group?.id, w.def);
      const shape = group?.rules.map((x) => `${x.direction} ${x.ethertype} ${x.remote_group_id}`);
      assert.deepEqual(shape?.sort(), [
        'egress IPv4 null',
        'egress IPv6 null',
        `ingress IPv4 ${w.def}`,
        `ingress IPv6 ${w.def}`,
      ]);
      assert.ok(group?.rules.every((x) => x.protocol === null && x.remote_ip_prefix === null));
      assert.deepEqual(info.members, [
        {
          id: w.def,
          ips: [
            '10.5.0.10',
            '10.5.0.11',
            '10.5.0.12',
            '10.5.0.13',
            '10.9.0.0/24',
            'fd00:5::a',
            'fd00:5::c',
          ],
        },
      ]);
      assert.deepEqual(
        warned.map((o) => (o as { ip: string }).ip),
        ['not-an-address'],
      );
    });

    test('remote groups of other groups; a deleted or unknown group is absent', async () => {
      const args = { host: 'h3', security_groups: [w.lonely, GHOST, w.web, w.deleted, w.web] };
      const info = await securityGroupInfo(api.db, args);
      assert.deepEqual(SecurityGroupInfoResult.parse(info), info);
      assert.deepEqual(
        info.groups.map((g) => g.id),
        [w.lonely, w.web].sort(),
      );
      assert.deepEqual(
        info.members.map((m) => m.id),
        [w.def],
      );
      const empty = await securityGroupInfo(api.db, { host: 'h3', security_groups: [GHOST] });
      assert.deepEqual(empty, { groups: [], members: [] });
    });

    test('security_group_info over the broker answers as the function does', async () => {
      const args = { host: 'h1', security_groups: [w.web, w.seed, w.def] };
      const answer = await waitFor('the q-plugin consumer', () =>
        api.broker.call(PLUGIN_TOPIC, 'security_group_info', args, { timeoutMs: 2000 }),
      );
      assert.deepEqual(answer, await securityGroupInfo(api.db, args));
      assert.deepEqual(
        (answer as { groups: { id: string }[] }).groups.map((g) => g.id),
        [w.web, w.seed, w.def].sort(),
      );
    });

    test('rules changed: the hosts of bound member ports, once per (host, group)', async () => {
      assert.deepEqual(await hintsOf(() => sgRulesChanged(deps(), [w.seed])), [
        `h1:${w.seed}`,
        `h2:${w.seed}`,
      ]);
      assert.deepEqual(
        await hintsOf(() => sgRulesChanged(deps(), [w.def, w.web])),
        [`h1:${w.def}`, `h2:${w.def}`, `h3:${w.web}`].sort(),
      );
    });

    test('rules changed: no hint when no bound port is in the group', async () => {
      assert.deepEqual(await hintsOf(() => sgRulesChanged(deps(), [w.lonely, GHOST])), []);
      assert.deepEqual(await hintsOf(() => sgRulesChanged(deps(), [])), []);
    });

    test('members changed: the hosts of ports in groups naming it as remote group', async () => {
      assert.deepEqual(await hintsOf(() => sgMembersChanged(deps(), [w.def])), [
        `h1:${w.def}`,
        `h2:${w.def}`,
        `h3:${w.def}`,
      ]);
    });

    test('members changed: nobody refers to it, only the hosts given hear it', async () => {
      assert.deepEqual(await hintsOf(() => sgMembersChanged(deps(), [w.seed, w.lonely])), []);
      assert.deepEqual(await hintsOf(() => sgMembersChanged(deps(), [w.seed], ['h2', ''])), [
        `h2:${w.seed}`,
      ]);
    });
  });
}
