/**
 * The ports kumo-api makes for a server belong to the server's project, as Nova makes
 * them in the instance's project whoever owns the network: a member booting on an
 * admin's shared network owns (sees, and is charged for) its server's port, and the
 * port quota of its project is what refuses one too many — that server goes ERROR with
 * the quota named, and no port is left behind.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Port } from '../../contracts/network.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';
import { serversHarness } from './api-servers-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`a server's ports belong to the server's project (${engine})`, () => {
    const t = testTokens();
    const h = serversHarness(engine, {}, t.authenticator);
    const project = hexId();
    const member = t.token({ project });
    after(() => t.cleanup());

    test("a member's server on a shared network: its port is the member's, and the member's port quota counts it", async () => {
      await h.report('h1');
      const net = await h.ok<{ id: string }>('POST', '/v2.0/networks', 'network', {
        network: { name: 'shared', shared: true },
      });
      await h.ok('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: net.id, cidr: '10.77.0.0/24', ip_version: 4 },
      });
      const image = await h.image({
        name: 'public',
        disk_format: 'qcow2',
        container_format: 'bare',
        visibility: 'public',
      });
      const quota = await h.call('PUT', `/v2.0/quotas/${project}`, { quota: { port: 1 } });
      assert.equal(quota.status, 200, quota.raw);
      const networks = [{ uuid: net.id }];
      const first = await h.boot({ imageRef: image, networks }, member);
      const [port] = await h.portsOf(first);
      assert.equal(port?.project_id, project, 'the port is in the server project');
      const mine = await h.call('GET', '/v2.0/ports', undefined, member);
      assert.deepEqual(
        (mine.body as { ports: Port[] }).ports.map((p) => p.id),
        [port?.id],
        'the member sees its server port',
      );
      const second = await h.boot({ imageRef: image, networks }, member);
      assert.equal((await h.show(second, member)).status, 'ERROR');
      // The fault's details (an admin's view, as Nova's) name the quota.
      const shown = await h.show(second);
      assert.match(JSON.stringify(shown.fault), /Quota exceeded for resources: \['port'\]/);
      assert.deepEqual(await h.portsOf(second), [], 'no port is left behind');
    });
  });
}
