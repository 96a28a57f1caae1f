/**
 * The Foundation fullstack suite: kumo-api, six agents, the kumo CLI and Debian's
 * openstack CLI against real RabbitMQ and a real database. Run once per engine by
 * agents.sqlite.test.ts and agents.postgres.test.ts; the RabbitMQ restart, which touches no
 * engine-specific path, on SQLite only.
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import type { Agent } from '../../contracts/agents.ts';
import {
  DEAD_LETTER_QUEUE,
  EXCHANGE,
  encodeMessage,
  hostQueue,
  REPORTS_TOPIC,
} from '../../contracts/messages.ts';
import {
  AGENT_DOWN_TIME,
  Cluster,
  MEMBER_TOKEN,
  ovsOf,
  REPORT_INTERVAL,
  runCommand,
} from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';

const neutronError = (body: unknown) =>
  (body as { NeutronError: { type: string; message: string } }).NeutronError;

export function agentSuite(engine: 'sqlite' | 'postgres') {
  describe(`foundation fullstack (${engine})`, { timeout: 600_000 }, () => {
    let c: Cluster;
    let lab: Lab;
    before(async () => {
      lab = await createLab({ hosts: 1 });
      c = await Cluster.create(engine, ovsOf(lab.hosts[0] as LabHost));
      await c.startAll();
    });
    after(async () => {
      await c?.cleanup();
      await lab?.destroy();
    });

    test('kumo agent-list shows all six agents alive with real host facts', async () => {
      const res = await c.kumo([
        'agent-list',
        '--host',
        c.host,
        '-f',
        'json',
        '-c',
        'agent_type',
        '-c',
        'alive',
        '-c',
        'binary',
      ]);
      assert.equal(res.code, 0, res.stderr);
      const rows = JSON.parse(res.stdout) as { agent_type: string; alive: boolean }[];
      assert.deepEqual(rows.map((r) => r.agent_type).sort(), [
        'Compute agent',
        'DHCP agent',
        'L3 agent',
        'Loadbalancer agent',
        'Open vSwitch agent',
        'Volume agent',
      ]);
      assert.ok(rows.every((r) => r.alive === true));
      const table = await c.kumo(['agent-list', '--host', c.host]);
      assert.equal(table.stdout.match(/:-\)/g)?.length, 6, table.stdout);
      const compute = await c.agentOf('compute');
      assert.equal(compute.configurations.vcpus, availableParallelism());
      assert.ok((compute.configurations.memory_mb as number) > 0);
      const ovs = await c.agentOf('ovs');
      assert.equal(ovs.configurations.datapath_type, 'netdev');
      assert.equal(ovs.configurations.tunneling_ip, lab.hosts[0]?.ip);
      assert.equal(ovs.topic, 'ovs_agent');
      assert.equal((await c.agentOf('dhcp')).topic, 'dhcp_agent');
      assert.equal((await c.agentOf('l3')).topic, 'l3_agent');
    });

    test('kill -9 shows xxx within agent_down_time + report_interval; a restart revives it', async () => {
      const before = await c.agentOf('dhcp');
      const killedAt = Date.now();
      await c.stop(c.agents.get('dhcp'), 'SIGKILL');
      const limit = (AGENT_DOWN_TIME + REPORT_INTERVAL) * 1000;
      await waitFor(
        'the killed agent to show xxx',
        async () => {
          const r = await c.kumo(['agent-list', '--host', c.host, '--agent-type', 'DHCP agent']);
          return r.stdout.includes('xxx');
        },
        limit + 2000,
      );
      assert.ok(
        Date.now() - killedAt <= limit + 2000,
        'dead within agent_down_time + report_interval (+ poll slack)',
      );
      c.startAgent('dhcp');
      const revived = await waitFor('the restarted agent alive', async () => {
        const a = await c.agentOf('dhcp');
        return a.alive ? a : undefined;
      });
      assert.equal(revived.id, before.id, 'same agent row');
      assert.ok(
        revived.started_at > before.started_at,
        `started_at moved on: ${before.started_at} → ${revived.started_at}`,
      );
      assert.equal(revived.created_at, before.created_at);
    });

    test('admin_state_up toggles through the CLI and the API and reaches the agent', async () => {
      const agent = await c.agentOf('l3');
      const down = await c.kumo([
        'agent-update',
        agent.id,
        '--admin-state-down',
        '--description',
        'maintenance',
      ]);
      assert.equal(down.code, 0, down.stderr);
      let now = await c.agentOf('l3');
      assert.equal(now.admin_state_up, false);
      assert.equal(now.description, 'maintenance');
      await waitFor('the agent to hear of it', () =>
        /"adminStateUp":false,"msg":"admin state changed"/.test(c.log('kumo-l3-agent')),
      );
      const up = await c.http('PUT', `/v2.0/agents/${agent.id}`, {
        agent: { admin_state_up: true },
      });
      assert.equal(up.status, 200);
      assert.equal((up.body as { agent: Agent }).agent.admin_state_up, true);
      now = await c.agentOf('l3');
      assert.equal(now.admin_state_up, true);
      assert.equal(now.description, 'maintenance', 'untouched fields stay');
      await waitFor('the agent to hear it is up again', () =>
        /"adminStateUp":true,"msg":"admin state changed"/.test(c.log('kumo-l3-agent')),
      );
      const shown = await c.kumo(['agent-show', agent.id, '-f', 'json']);
      assert.equal((JSON.parse(shown.stdout) as Agent).admin_state_up, true);
    });

    test('bad requests: 404, 400, 401, 403 with NeutronError bodies naming the problem', async () => {
      const agent = await c.agentOf('ovs');
      const missing = await c.http('GET', '/v2.0/agents/00000000-0000-4000-8000-000000000000');
      assert.equal(missing.status, 404);
      assert.equal(neutronError(missing.body).type, 'AgentNotFound');
      assert.equal((await c.http('GET', '/v2.0/agents/not-a-uuid')).status, 404);
      const ro = await c.http('PUT', `/v2.0/agents/${agent.id}`, { agent: { host: 'other' } });
      assert.equal(ro.status, 400);
      assert.match(neutronError(ro.body).message, /read-only attribute host/);
      const unknown = await c.http('PUT', `/v2.0/agents/${agent.id}`, { agent: { colour: 'red' } });
      assert.equal(unknown.status, 400);
      assert.match(neutronError(unknown.body).message, /colour/);
      const badType = await c.http('PUT', `/v2.0/agents/${agent.id}`, {
        agent: { admin_state_up: 'yes' },
      });
      assert.equal(badType.status, 400);
      assert.match(neutronError(badType.body).message, /agent\.admin_state_up/);
      const newline = await c.http('PUT', `/v2.0/agents/${agent.id}`, {
        agent: { description: 'a\nb' },
      });
      assert.equal(newline.status, 400);
      assert.match(neutronError(newline.body).message, /agent\.description.*control characters/);
      const malformed = await c.http('PUT', `/v2.0/agents/${agent.id}`, '{"agent": ');
      assert.equal(malformed.status, 400);
      assert.equal(neutronError(malformed.body).type, 'BadRequest');
      const filter = await c.http('GET', '/v2.0/agents?colour=red');
      assert.equal(filter.status, 400);
      assert.match(neutronError(filter.body).message, /colour/);
      const noToken = await c.http('GET', '/v2.0/agents', undefined, null);
      assert.equal(noToken.status, 401);
      assert.match(neutronError(noToken.body).message, /X-Auth-Token/);
      assert.equal((await c.http('GET', '/v2.0/agents', undefined, 'wrong-token-123')).status, 401);
      // Neutron's behaviour for a non-admin: an empty list, never a 403.
      const member = await c.http('GET', '/v2.0/agents', undefined, MEMBER_TOKEN);
      assert.equal(member.status, 200);
      assert.deepEqual(member.body, { agents: [] });
      assert.equal((await c.http('GET', '/', undefined, MEMBER_TOKEN)).status, 200);
      const after = await c.agentOf('ovs');
      assert.equal(after.host, agent.host);
      assert.equal(after.admin_state_up, agent.admin_state_up);
      assert.equal(after.description, agent.description);
      const cliMissing = await c.kumo(['agent-show', '00000000-0000-4000-8000-000000000000']);
      assert.equal(cliMissing.code, 1);
      assert.match(cliMissing.stderr.trim(), /^kumo: 404 AgentNotFound/);
      assert.equal(cliMissing.stderr.trim().split('\n').length, 1);
    });

    test('malformed AMQP messages are dead-lettered and consumers keep serving', async () => {
      const conn = await amqp.connect(c.vhost.url);
      try {
        const ch = await conn.createConfirmChannel();
        await ch.purgeQueue(DEAD_LETTER_QUEUE);
        const agentQueue = hostQueue('compute_agent', c.host);
        ch.publish(EXCHANGE, REPORTS_TOPIC, Buffer.from('not json'));
        ch.publish(
          EXCHANGE,
          REPORTS_TOPIC,
          encodeMessage('report_state', { agent_state: { host: 'x;rm' }, time: 'now' } as never),
        );
        ch.publish(
          EXCHANGE,
          agentQueue,
          Buffer.from('{"kumo":1,"method":"resync","args":{"reason":"because\\n"}}'),
        );
        await ch.waitForConfirms();
        const reasons = await waitFor('three dead letters', async () => {
          const got: string[] = [];
          for (;;) {
            const m = await ch.get(DEAD_LETTER_QUEUE, { noAck: true });
            if (!m) break;
            got.push(
              `${m.properties.headers?.['x-kumo-queue']}: ${m.properties.headers?.['x-kumo-reason']}`,
            );
          }
          return got.length ? got : undefined;
        });
        const all = [...reasons];
        while (all.length < 3) {
          await new Promise((r) => setTimeout(r, 200));
          const m = await ch.get(DEAD_LETTER_QUEUE, { noAck: true });
          if (m)
            all.push(
              `${m.properties.headers?.['x-kumo-queue']}: ${m.properties.headers?.['x-kumo-reason']}`,
            );
        }
        assert.ok(
          all.some((r) => r.startsWith(`${REPORTS_TOPIC}: `) && /not valid JSON/.test(r)),
          all.join('\n'),
        );
        assert.ok(
          all.some((r) => /args\.agent_state/.test(r)),
          all.join('\n'),
        );
        assert.ok(
          all.some((r) => r.startsWith(`${agentQueue}: `) && /args\.reason/.test(r)),
          all.join('\n'),
        );
      } finally {
        await conn.close();
      }
      const before = await c.agentOf('compute');
      await waitFor('fresh heartbeats after the bad messages', async () => {
        const now = await c.agentOf('compute');
        return now.alive && now.heartbeat_timestamp > before.heartbeat_timestamp;
      });
      const ok = await c.kumo(['agent-list', '--host', c.host]);
      assert.equal(ok.stdout.match(/:-\)/g)?.length, 6);
    });

    // The broker restart exercises AMQP reconnection only (the heartbeat rows it waits for
    // are written as in the kill -9 test above, on both engines): one engine runs it.
    if (engine === 'sqlite') {
      test('RabbitMQ restarted under running agents: they reconnect without being restarted', async () => {
        const pids = [...c.agents.values()].map((p) => p.child.pid);
        assert.equal((await runCommand(['rabbitmqctl', '-q', 'shutdown'])).code, 0);
        assert.notEqual(
          (await runCommand(['rabbitmqctl', '-q', 'status'])).code,
          0,
          'the broker is down',
        );
        const started = await runCommand(['rabbitmq-server', '-detached']);
        assert.equal(started.code, 0, started.stderr);
        await waitFor(
          'RabbitMQ back',
          async () => (await runCommand(['rabbitmqctl', '-q', 'await_startup'])).code === 0,
          120_000,
          1000,
        );
        const restartedAt = new Date(Date.now() + 500).toISOString().slice(0, 19).replace('T', ' ');
        await c.waitAgents(
          'all six reporting after the broker restart',
          (agents) =>
            agents.length === 6 &&
            agents.every((a) => a.alive && a.heartbeat_timestamp >= restartedAt),
          60_000,
        );
        assert.deepEqual(
          [...c.agents.values()].map((p) => p.child.pid),
          pids,
          'no agent was restarted',
        );
        assert.ok([...c.agents.values()].every((p) => p.child.exitCode === null));
        assert.match(c.log('kumo-volume-agent'), /"reconnected":true/);
      });
    }

    test('kumo-api restarted: no agent row lost', async () => {
      const before = (await c.agentList()).map((a) => a.id).sort();
      assert.equal(await c.stop(c.api), 0, 'kumo-api exits 0 on SIGTERM');
      await c.startApi();
      await c.waitAgents(
        'six agents alive again',
        (agents) => agents.length === 6 && agents.every((a) => a.alive),
      );
      assert.deepEqual((await c.agentList()).map((a) => a.id).sort(), before);
    });

    test('the openstack CLI lists, shows, disables and deletes agents', async () => {
      const list = await c.openstack(['network', 'agent', 'list', '--host', c.host, '-f', 'json']);
      assert.equal(list.code, 0, list.stderr);
      const rows = JSON.parse(list.stdout) as {
        ID: string;
        'Agent Type': string;
        Alive: boolean;
      }[];
      assert.equal(rows.length, 6);
      assert.ok(rows.every((r) => r.Alive === true));
      const dhcp = await c.openstack([
        'network',
        'agent',
        'list',
        '--agent-type',
        'dhcp',
        '-f',
        'json',
      ]);
      assert.deepEqual(
        (JSON.parse(dhcp.stdout) as { 'Agent Type': string }[]).map((r) => r['Agent Type']),
        ['DHCP agent'],
      );
      const lb = await c.agentOf('lbaas');
      const show = await c.openstack(['network', 'agent', 'show', lb.id, '-f', 'json']);
      assert.equal(show.code, 0, show.stderr);
      assert.equal((JSON.parse(show.stdout) as { binary: string }).binary, 'kumo-lbaas-agent');
      const set = await c.openstack(['network', 'agent', 'set', '--disable', lb.id]);
      assert.equal(set.code, 0, set.stderr);
      assert.equal((await c.agentOf('lbaas')).admin_state_up, false);
      const del = await c.openstack(['network', 'agent', 'delete', lb.id]);
      assert.equal(del.code, 0, del.stderr);
      assert.equal((await c.http('GET', `/v2.0/agents/${lb.id}`)).status, 404);
      const gone = await c.openstack(['network', 'agent', 'show', lb.id]);
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /could not be found/);
      const back = await waitFor('the deleted, still running agent to register again', async () => {
        const a = (await c.agentList()).find((x) => x.binary === 'kumo-lbaas-agent');
        return a?.alive ? a : undefined;
      });
      assert.notEqual(back.id, lb.id);
      assert.equal(back.admin_state_up, true);
    });

    test('SIGTERM stops an agent cleanly', async () => {
      const before = await c.agentOf('volume');
      assert.equal(await c.stop(c.agents.get('volume'), 'SIGTERM'), 0);
      assert.match(c.log('kumo-volume-agent'), /"msg":"stopped"/);
      await new Promise((r) => setTimeout(r, 1100)); // started_at has one-second resolution
      c.startAgent('volume');
      await waitFor('the volume agent back with a new start', async () => {
        const now = await c.agentOf('volume');
        return now.alive && now.started_at > before.started_at;
      });
    });
  });
}
