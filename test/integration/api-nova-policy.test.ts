/**
 * Nova's policy on servers with real signed tokens, on both engines: two projects'
 * members each see and act on only their own servers (another's is a 404 exactly as a
 * missing one, left out of lists), a reader reads but never creates, an admin lists its
 * own project by default and every project with all_tenants; a non-admin's all_tenants
 * is Nova's 403. Every refusal changes nothing (the instance rows before and after).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { novaError, novaPolicyHarness } from './api-nova-policy-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Nova server policy on ${engine}`, () => {
    const h = novaPolicyHarness(engine);
    const { who, projects } = h;

    test('each member lists only its own servers, with its project and user', async () => {
      const a = await h.server(who.memberA);
      const b = await h.server(who.memberB);
      assert.deepEqual(await h.listed(who.memberA), [a]);
      assert.deepEqual(await h.listed(who.memberB), [b]);
      const plain = await h.call('GET', '/servers', who.memberA);
      assert.deepEqual(
        (plain.body.servers as { id: string }[]).map((s) => s.id),
        [a],
      );
      const shown = await h.call('GET', `/servers/${a}`, who.memberA);
      assert.equal((shown.body.server as Record<string, unknown>).tenant_id, projects.a);
      assert.ok((shown.body.server as Record<string, unknown>).user_id);
    });

    test("another project's server is a 404 exactly as a missing one, on every route", async () => {
      const b = await h.server(who.memberB);
      const missing = randomUUID();
      const before = await h.snapshot();
      const routes: [method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown][] = [
        ['GET', '/servers/ID'],
        ['GET', '/servers/ID/ips'],
        ['PUT', '/servers/ID', { server: { name: 'stolen' } }],
        ['POST', '/servers/ID/action', { 'os-stop': null }],
        ['POST', '/servers/ID/action', { lock: null }],
        ['POST', '/servers/ID/action', { 'os-getConsoleOutput': {} }],
        ['DELETE', '/servers/ID'],
      ];
      for (const [method, path, body] of routes) {
        const theirs = await h.call(method, path.replace('ID', b), who.memberA, body);
        const none = await h.call(method, path.replace('ID', missing), who.memberA, body);
        assert.deepEqual(novaError(theirs, 404), {
          kind: 'itemNotFound',
          message: `Instance ${b} could not be found.`,
        });
        assert.equal(novaError(none, 404).message, `Instance ${missing} could not be found.`);
      }
      assert.deepEqual(await h.snapshot(), before);
      assert.equal((await h.call('GET', `/servers/${b}`, who.memberB)).status, 200);
    });

    test('a member deletes its own server', async () => {
      const a = await h.server(who.memberA);
      assert.equal((await h.call('DELETE', `/servers/${a}`, who.memberA)).status, 204);
      assert.ok(!(await h.listed(who.memberA)).includes(a));
    });

    test('a reader lists its project but cannot create, change or delete', async () => {
      const a = await h.server(who.memberA);
      assert.ok((await h.listed(who.readerA)).includes(a));
      assert.equal((await h.call('GET', `/servers/${a}`, who.readerA)).status, 200);
      const before = await h.snapshot();
      const refused = [
        await h.boot(who.readerA),
        await h.call('PUT', `/servers/${a}`, who.readerA, { server: { name: 'x' } }),
        await h.call('POST', `/servers/${a}/action`, who.readerA, { lock: null }),
        await h.call('DELETE', `/servers/${a}`, who.readerA),
      ];
      for (const r of refused) assert.equal(novaError(r, 403).kind, 'forbidden');
      assert.deepEqual(await h.snapshot(), before);
    });

    test('an admin lists its own project by default and every project with all_tenants', async () => {
      const a = await h.server(who.memberA);
      const b = await h.server(who.memberB);
      const mine = await h.server(who.admin);
      assert.deepEqual(await h.listed(who.admin), [mine]);
      const all = await h.listed(who.admin, '?all_tenants=1');
      for (const id of [a, b, mine]) assert.ok(all.includes(id));
      assert.ok((await h.listed(who.admin, '?all_tenants')).includes(b), 'empty is true');
      assert.deepEqual(await h.listed(who.admin, '?all_tenants=0'), [mine]);
      const onlyB = await h.listed(who.admin, `?all_tenants=True&project_id=${projects.b}`);
      assert.ok(onlyB.includes(b) && !onlyB.includes(a));
      const viaTenant = await h.listed(who.admin, `?all_tenants=yes&tenant_id=${projects.a}`);
      assert.ok(viaTenant.includes(a) && !viaTenant.includes(b));
      assert.equal((await h.call('GET', `/servers/${b}`, who.admin)).status, 200);
      const bad = await h.call('GET', '/servers?all_tenants=maybe', who.admin);
      assert.match(novaError(bad, 400).message, /Unrecognized value 'maybe'/);
    });

    test("a member's all_tenants is Nova's 403, and project_id filters are its own", async () => {
      const b = await h.server(who.memberB);
      const r = await h.call('GET', '/servers/detail?all_tenants=1', who.memberA);
      assert.deepEqual(novaError(r, 403), {
        kind: 'forbidden',
        message:
          "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.",
      });
      assert.ok(!(await h.listed(who.memberA, `?project_id=${projects.b}`)).includes(b));
    });

    test("an admin acts on another project's server; an admin's lock holds against the owner", async () => {
      const a = await h.server(who.memberA);
      const lock = await h.call('POST', `/servers/${a}/action`, who.admin, { lock: null });
      assert.equal(lock.status, 202);
      const before = await h.snapshot();
      const unlock = await h.call('POST', `/servers/${a}/action`, who.memberA, { unlock: null });
      assert.equal(novaError(unlock, 403).kind, 'forbidden');
      assert.deepEqual(await h.snapshot(), before);
      const del = await h.call('DELETE', `/servers/${a}`, who.memberA);
      assert.deepEqual(novaError(del, 409).message, `Instance ${a} is locked`);
      assert.deepEqual(await h.snapshot(), before);
      assert.equal((await h.call('DELETE', `/servers/${a}`, who.admin)).status, 204);
    });

    test("the owner's lock is the project's: another member of it unlocks", async () => {
      const a = await h.server(who.memberA);
      const other = h.tokens.token({ project: projects.a });
      assert.equal(
        (await h.call('POST', `/servers/${a}/action`, who.memberA, { lock: null })).status,
        202,
      );
      const [row] = await h.ctx.db.query<{ locked_by: string }>(
        'SELECT locked_by FROM instances WHERE id = ?',
        [a],
      );
      assert.equal(row?.locked_by, 'owner');
      assert.equal(
        (await h.call('POST', `/servers/${a}/action`, other, { unlock: null })).status,
        202,
      );
    });

    test("a member cannot boot on another project's private network or port", async () => {
      const net = await h.call('POST', '/v2.0/networks', who.memberB, { network: { name: 'nb' } });
      assert.equal(net.status, 201, JSON.stringify(net.body));
      const netId = String((net.body.network as Record<string, unknown>).id);
      const before = await h.snapshot();
      const r = await h.boot(who.memberA, { networks: [{ uuid: netId }] });
      assert.equal(novaError(r, 400).message, `Network ${netId} could not be found.`);
      const port = await h.call('POST', '/v2.0/ports', who.memberB, {
        port: { network_id: netId },
      });
      assert.equal(port.status, 201, JSON.stringify(port.body));
      const portId = String((port.body.port as Record<string, unknown>).id);
      const p = await h.boot(who.memberA, { networks: [{ port: portId }] });
      assert.equal(novaError(p, 400).message, `Port id ${portId} could not be found.`);
      assert.deepEqual(await h.snapshot(), before);
    });
  });
}
