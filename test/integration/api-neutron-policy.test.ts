/**
 * Neutron's policy through buildApp() + inject on both engines, with real signed tokens:
 * two member projects, a reader and an admin. Each member sees only its own networks,
 * subnets and ports plus shared and external networks (and their subnets); another
 * project's private resource answers 404 exactly as a missing one; a shared network is
 * usable by both; the hostile-member list of issue 12 is refused or hidden; agents and
 * the DHCP scheduler stay admin-only.
 *
 * Invariant under test: every refused request leaves all three collections, field for
 * field, exactly as they were.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { storeReport } from '../../api/db/reports.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { type Body, creator, err, refusals } from '../helpers/neutron-refusals.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Neutron policy on ${engine}`, () => {
    const t = testTokens();
    const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
    const [A, B, OPS] = [hexId(), hexId(), hexId()];
    const memberA = t.token({ project: A });
    const memberB = t.token({ project: B });
    const readerA = t.token({ project: A, roles: ['reader'] });
    const admin = t.token({ project: OPS, roles: ['admin'] });
    after(() => t.cleanup());

    const call = (token: string, method: string, url: string, payload?: unknown) =>
      injectAs(api, token, method, url, payload);
    const made = creator(call);
    const ids = async (token: string, collection: string, query = '') => {
      const r = await call(token, 'GET', `/v2.0/${collection}${query}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body[collection] as { id: string }[]).map((x) => x.id).sort();
    };
    const state = async () => ({
      networks: (await call(admin, 'GET', '/v2.0/networks')).body,
      subnets: (await call(admin, 'GET', '/v2.0/subnets')).body,
      ports: (await call(admin, 'GET', '/v2.0/ports')).body,
    });
    /** A request that must be refused with `status`/`type` and change nothing. */
    const refused = refusals(call, state);

    const w = {} as {
      adminNet: Network;
      adminSub: Subnet;
      adminPort: Port;
      shared: Network;
      sharedSub: Subnet;
      ext: Network;
      extSub: Subnet;
      netA: Network;
      subA: Subnet;
      portA: Port;
      netB: Network;
      subB: Subnet;
    };
    before(async () => {
      w.adminNet = await made(admin, 'network', { name: 'ops' });
      w.adminSub = await made(admin, 'subnet', { network_id: w.adminNet.id, cidr: '10.1.0.0/24' });
      w.adminPort = await made(admin, 'port', { network_id: w.adminNet.id });
      w.shared = await made(admin, 'network', { name: 'shared', shared: true });
      w.sharedSub = await made(admin, 'subnet', { network_id: w.shared.id, cidr: '10.2.0.0/24' });
      w.ext = await made(admin, 'network', { name: 'public', 'router:external': true });
      w.extSub = await made(admin, 'subnet', { network_id: w.ext.id, cidr: '10.3.0.0/24' });
      w.netA = await made(memberA, 'network', {
        name: 'a',
        shared: false,
        'router:external': false,
      });
      w.subA = await made(memberA, 'subnet', { network_id: w.netA.id, cidr: '10.4.0.0/24' });
      w.portA = await made(memberA, 'port', { network_id: w.netA.id });
      w.netB = await made(memberB, 'network', { name: 'b' });
      w.subB = await made(memberB, 'subnet', { network_id: w.netB.id, cidr: '10.5.0.0/24' });
    });

    test('each project sees its own, shared and external networks; admin sees all', async () => {
      const { adminNet, shared, ext, netA, netB } = w;
      assert.equal(netA.project_id, A, 'owned by the token project');
      assert.deepEqual(await ids(memberA, 'networks'), [shared.id, ext.id, netA.id].sort());
      assert.deepEqual(await ids(memberB, 'networks'), [shared.id, ext.id, netB.id].sort());
      assert.deepEqual(await ids(readerA, 'networks'), await ids(memberA, 'networks'));
      assert.deepEqual(
        await ids(admin, 'networks'),
        [adminNet.id, shared.id, ext.id, netA.id, netB.id].sort(),
      );
      assert.deepEqual(await ids(memberA, 'networks', `?id=${netB.id}`), []);
      const hidden = await call(memberA, 'GET', `/v2.0/networks/${netB.id}`);
      const missing = await call(memberA, 'GET', `/v2.0/networks/${crypto.randomUUID()}`);
      assert.equal(hidden.status, 404);
      assert.equal(err(hidden).type, 'NetworkNotFound');
      assert.equal(err(hidden).message, `Network ${netB.id} could not be found.`);
      assert.equal(err(missing).type, err(hidden).type);
      const seen = await call(memberB, 'GET', `/v2.0/networks/${shared.id}`);
      assert.equal(seen.status, 200);
      const view = seen.body.network as Body;
      assert.equal('provider:network_type' in view, false, 'provider attributes are admin-only');
      const adminView = (await call(admin, 'GET', `/v2.0/networks/${shared.id}`)).body.network;
      assert.equal((adminView as Body)['provider:network_type'], 'vxlan');
      assert.equal(
        (await call(memberA, 'GET', '/v2.0/networks?provider:network_type=vxlan')).status,
        400,
      );
    });

    test('subnets follow their network; ports their owner and network owner', async () => {
      const { adminSub, sharedSub, extSub, subA, subB, portA, adminPort } = w;
      assert.deepEqual(await ids(memberA, 'subnets'), [sharedSub.id, extSub.id, subA.id].sort());
      assert.deepEqual(await ids(memberB, 'subnets'), [sharedSub.id, extSub.id, subB.id].sort());
      const hidden = await call(memberA, 'GET', `/v2.0/subnets/${adminSub.id}`);
      assert.equal(hidden.status, 404);
      assert.equal(err(hidden).type, 'SubnetNotFound');
      assert.deepEqual(await ids(memberA, 'ports'), [portA.id]);
      assert.deepEqual(await ids(memberB, 'ports'), []);
      assert.equal((await call(memberB, 'GET', `/v2.0/ports/${portA.id}`)).status, 404);
      assert.equal(
        err(await call(memberA, 'GET', `/v2.0/ports/${adminPort.id}`)).type,
        'PortNotFound',
      );
      // A port an admin makes for B on A's network: B owns it, A (the network owner) sees it.
      const forB = await made<Port>(admin, 'port', { network_id: w.netA.id, project_id: B });
      assert.equal(forB.project_id, B);
      assert.deepEqual(await ids(memberB, 'ports'), [forB.id]);
      assert.deepEqual(await ids(memberA, 'ports'), [portA.id, forB.id].sort());
      const msg = await refused(
        403,
        'PolicyNotAuthorized',
        memberA,
        'PUT',
        `/v2.0/ports/${forB.id}`,
        {
          port: { name: 'mine' },
        },
      );
      assert.equal(msg, 'rule:update_port is disallowed by policy');
      assert.equal((await call(memberA, 'DELETE', `/v2.0/ports/${forB.id}`)).status, 204);
      assert.deepEqual(await ids(memberB, 'ports'), []);
    });

    test('a shared network is usable by both members; others are not', async () => {
      const { shared, sharedSub, ext, netB } = w;
      const pa = await made<Port>(memberA, 'port', { network_id: shared.id });
      const pb = await made<Port>(memberB, 'port', {
        network_id: shared.id,
        fixed_ips: [{ subnet_id: sharedSub.id }],
      });
      assert.equal(pa.project_id, A);
      assert.equal(pb.project_id, B);
      assert.equal((await ids(memberA, 'ports')).includes(pb.id), false, 'not B’s port');
      // update_port:fixed_ips is the network owner's, even with a subnet_id alone.
      let msg = await refused(403, 'PolicyNotAuthorized', memberB, 'PUT', `/v2.0/ports/${pb.id}`, {
        port: { fixed_ips: [{ subnet_id: sharedSub.id }] },
      });
      assert.equal(
        msg,
        '(rule:update_port and (rule:update_port:fixed_ips and (rule:update_port:fixed_ips:subnet_id))) is disallowed by policy',
      );
      msg = await refused(403, 'PolicyNotAuthorized', memberA, 'POST', '/v2.0/ports', {
        port: { network_id: shared.id, fixed_ips: [{ ip_address: '10.2.0.50' }] },
      });
      assert.equal(
        msg,
        '(rule:create_port and (rule:create_port:fixed_ips and (rule:create_port:fixed_ips:ip_address))) is disallowed by policy',
      );
      await refused(403, 'PolicyNotAuthorized', memberA, 'POST', '/v2.0/ports', {
        port: { network_id: shared.id, device_owner: 'network:dhcp' },
      });
      await refused(403, 'PolicyNotAuthorized', memberA, 'POST', '/v2.0/ports', {
        port: { network_id: shared.id, mac_address: 'fa:16:3e:00:00:01' },
      });
      msg = await refused(403, 'HTTPForbidden', memberA, 'POST', '/v2.0/ports', {
        port: { network_id: ext.id },
      });
      assert.equal(msg, `Tenant ${A} not allowed to create port on this network`);
      await refused(404, 'NetworkNotFound', memberA, 'POST', '/v2.0/ports', {
        port: { network_id: netB.id },
      });
      msg = await refused(403, 'PolicyNotAuthorized', memberA, 'POST', '/v2.0/subnets', {
        subnet: { network_id: shared.id, cidr: '10.2.1.0/24' },
      });
      assert.equal(msg, 'rule:create_subnet is disallowed by policy');
      await refused(404, 'NetworkNotFound', memberA, 'POST', '/v2.0/subnets', {
        subnet: { network_id: netB.id, cidr: '10.5.1.0/24' },
      });
      await refused(400, 'BadRequest', memberA, 'POST', '/v2.0/networks', {
        network: { name: 'theirs', project_id: B },
      });
      const mac = await made<Port>(memberA, 'port', {
        network_id: w.netA.id,
        mac_address: 'fa:16:3e:aa:bb:cc',
        fixed_ips: [{ ip_address: '10.4.0.77' }],
      });
      assert.equal(mac.mac_address, 'fa:16:3e:aa:bb:cc', 'the network owner may pick a MAC');
    });

    test('the hostile member: every write on what it does not own is refused', async () => {
      const { adminNet, adminSub, adminPort, shared, sharedSub, netA, portA } = w;
      let msg = await refused(
        403,
        'PolicyNotAuthorized',
        memberA,
        'PUT',
        `/v2.0/networks/${shared.id}`,
        {
          network: { name: 'pwned' },
        },
      );
      assert.equal(msg, 'rule:update_network is disallowed by policy');
      await refused(404, 'NetworkNotFound', memberA, 'PUT', `/v2.0/networks/${adminNet.id}`, {
        network: { name: 'pwned' },
      });
      msg = await refused(
        403,
        'PolicyNotAuthorized',
        memberA,
        'PUT',
        `/v2.0/subnets/${sharedSub.id}`,
        {
          subnet: { name: 'pwned' },
        },
      );
      assert.equal(msg, 'rule:update_subnet is disallowed by policy');
      await refused(404, 'SubnetNotFound', memberA, 'PUT', `/v2.0/subnets/${adminSub.id}`, {
        subnet: { name: 'pwned' },
      });
      await refused(404, 'PortNotFound', memberA, 'DELETE', `/v2.0/ports/${adminPort.id}`);
      await refused(404, 'NetworkNotFound', memberA, 'DELETE', `/v2.0/networks/${adminNet.id}`);
      msg = await refused(
        403,
        'PolicyNotAuthorized',
        memberA,
        'DELETE',
        `/v2.0/networks/${shared.id}`,
      );
      assert.equal(msg, 'rule:delete_network is disallowed by policy');
      await refused(403, 'PolicyNotAuthorized', memberA, 'DELETE', `/v2.0/subnets/${sharedSub.id}`);
      msg = await refused(403, 'PolicyNotAuthorized', memberA, 'PUT', `/v2.0/ports/${portA.id}`, {
        port: { mac_address: 'fa:16:3e:01:02:03' },
      });
      assert.equal(
        msg,
        '(rule:update_port and rule:update_port:mac_address) is disallowed by policy',
      );
      await refused(403, 'PolicyNotAuthorized', memberA, 'PUT', `/v2.0/ports/${portA.id}`, {
        port: { 'binding:host_id': 'compute1' },
      });
      msg = await refused(403, 'PolicyNotAuthorized', memberA, 'POST', '/v2.0/networks', {
        network: { shared: true },
      });
      assert.equal(
        msg,
        '(rule:create_network and rule:create_network:shared) is disallowed by policy',
      );
      await refused(403, 'PolicyNotAuthorized', memberA, 'PUT', `/v2.0/networks/${netA.id}`, {
        network: { shared: true },
      });
      await refused(403, 'PolicyNotAuthorized', readerA, 'POST', '/v2.0/networks', {
        network: { name: 'r' },
      });
      await refused(403, 'PolicyNotAuthorized', readerA, 'DELETE', `/v2.0/ports/${portA.id}`);
    });

    test('binding attributes are hidden from members in every view and through fields=', async () => {
      const { portA } = w;
      assert.equal(
        (await call(admin, 'PUT', `/v2.0/ports/${portA.id}`, { port: { 'binding:host_id': 'c1' } }))
          .status,
        200,
      );
      const binding = [
        'binding:host_id',
        'binding:vif_type',
        'binding:vif_details',
        'binding:profile',
      ];
      const asAdmin = (await call(admin, 'GET', `/v2.0/ports/${portA.id}`)).body.port as Body;
      assert.equal(asAdmin['binding:host_id'], 'c1');
      const own = (await call(memberA, 'GET', `/v2.0/ports/${portA.id}`)).body.port as Body;
      for (const k of binding) assert.equal(k in own, false, `${k} hidden`);
      assert.equal(own.id, portA.id);
      const fields = '?fields=binding:host_id&fields=binding:vif_details';
      assert.deepEqual((await call(memberA, 'GET', `/v2.0/ports/${portA.id}${fields}`)).body, {
        port: {},
      });
      const listed = (await call(memberA, 'GET', `/v2.0/ports${fields}`)).body.ports as Body[];
      assert.ok(listed.length > 0);
      for (const p of listed) assert.deepEqual(p, {});
      assert.equal((await call(memberA, 'GET', '/v2.0/ports?binding:host_id=c1')).status, 400);
      const updated = await call(memberA, 'PUT', `/v2.0/ports/${portA.id}`, {
        port: { name: 'n' },
      });
      assert.equal(updated.status, 200);
      for (const k of binding) assert.equal(k in (updated.body.port as Body), false);
    });

    test('agents: none listed to a member, each a 404; the DHCP scheduler is 403', async () => {
      await api.db.transaction((tx) =>
        storeReport(
          tx,
          {
            agent_type: 'DHCP agent',
            binary: 'kumo-dhcp-agent',
            topic: 'dhcp_agent',
            host: 'h1',
            configurations: {},
          },
          new Date('2026-11-22T10:00:00.000Z'),
          30,
        ),
      );
      const [agent] = (await call(admin, 'GET', '/v2.0/agents')).body.agents as { id: string }[];
      assert.ok(agent);
      assert.deepEqual((await call(memberA, 'GET', '/v2.0/agents')).body, { agents: [] });
      for (const [method, payload] of [
        ['GET', undefined],
        ['PUT', { agent: { admin_state_up: false } }],
        ['DELETE', undefined],
      ] as const) {
        const r = await call(memberA, method, `/v2.0/agents/${agent.id}`, payload);
        assert.equal(r.status, 404);
        assert.equal(err(r).message, `Agent ${agent.id} could not be found.`);
      }
      const still = (await call(admin, 'GET', `/v2.0/agents/${agent.id}`)).body.agent as Body;
      assert.equal(still.admin_state_up, true, 'the refused PUT and DELETE changed nothing');
      const r = await call(memberA, 'GET', `/v2.0/agents/${agent.id}/dhcp-networks`);
      assert.equal(r.status, 403);
      assert.equal(err(r).message, 'rule:get_dhcp-networks is disallowed by policy');
      assert.equal(
        (await call(memberA, 'GET', `/v2.0/networks/${w.netA.id}/dhcp-agents`)).status,
        403,
      );
      await refused(
        403,
        'PolicyNotAuthorized',
        memberA,
        'POST',
        `/v2.0/agents/${agent.id}/dhcp-networks`,
        {
          network_id: w.netA.id,
        },
      );
    });
  });
}
