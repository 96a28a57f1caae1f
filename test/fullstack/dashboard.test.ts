/**
 * The operator's dashboard in a real browser (Debian's Chromium through playwright-core)
 * against a real kumo-api with its own Keystone listener and real agent processes: two
 * DHCP agents and an L3 agent on simulated hosts (they need no Open vSwitch to report and
 * be scheduled to; what they fail to plug shows as their reported failures).
 *
 * An admin logs in with a password, sees every agent alive, moves a network between the
 * DHCP agents and sees the hosting change, finds the router between two networks on the
 * topology, disables an agent, and watches a killed agent turn dead without a reload. A
 * member logs in and sees no agents. Every page is screenshotted (test-artifacts/
 * dashboard/), and no page made a request off 127.0.0.1, broke the CSP or logged an error.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Agent } from '../../contracts/agents.ts';
import { launchChromium, type WatchedPage, watchedPage } from '../helpers/browser.ts';
import { Cluster, type OvsEndpoint, type Proc } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';

const NO_OVS: OvsEndpoint = {
  dbSocket: '/nonexistent/db.sock',
  rundir: '/nonexistent',
  localIp: '192.0.2.10',
};
const ADMIN_PW = 'dashboard admin pw';
const MEMBER_PW = 'dashboard member pw';

describe('the dashboard in Chromium', { timeout: 300_000 }, () => {
  let c: Cluster;
  let browser: Browser;
  let w: WatchedPage;
  const hostA = `dsha-${process.pid}`;
  const hostB = `dshb-${process.pid}`;
  let dhcpB: Proc;
  const ids: Record<string, string> = {};

  const post = async (path: string, body: unknown) => {
    const r = await c.http('POST', path, body);
    assert.ok(r.status < 300, `${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as Record<string, { id: string }>;
  };
  const agents = async () =>
    ((await c.http('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents;

  before(async () => {
    c = await Cluster.create('sqlite');
    await c.startApi();
    await c.bootstrap('admin', 'admin', 'admin', ADMIN_PW);
    await c.bootstrap('viewer', 'demo', 'member', MEMBER_PW);
    c.startAgentOn('dhcp', hostA, NO_OVS);
    dhcpB = c.startAgentOn('dhcp', hostB, NO_OVS);
    c.startAgentOn('l3', hostA, NO_OVS);
    await waitFor('three alive agents', async () => {
      const list = await agents();
      return list.length === 3 && list.every((a) => a.alive);
    });
    for (const [name, cidr] of [
      ['left', '10.61.0.0/24'],
      ['right', '10.62.0.0/24'],
    ] as const) {
      ids[name] = (await post('/v2.0/networks', { network: { name } })).network?.id as string;
      ids[`${name}-subnet`] = (
        await post('/v2.0/subnets', {
          subnet: { network_id: ids[name], cidr, ip_version: 4, name: `${name}-subnet` },
        })
      ).subnet?.id as string;
    }
    ids.router = (await post('/v2.0/routers', { router: { name: 'between' } })).router
      ?.id as string;
    for (const side of ['left', 'right'])
      await c.http('PUT', `/v2.0/routers/${ids.router}/add_router_interface`, {
        subnet_id: ids[`${side}-subnet`],
      });
    browser = await launchChromium();
    w = await watchedPage(browser, 'dashboard');
  });
  after(async () => {
    await browser?.close();
    await c?.cleanup();
  });

  const login = async (user: string, password: string, project: string) => {
    await w.page.goto(`${c.url}/dashboard`);
    await w.page.fill('input[name=username]', user);
    await w.page.fill('input[name=password]', password);
    await w.page.fill('input[name=project]', project);
    await w.page.click('button[type=submit]');
  };
  const rowOf = (agent: string) => `#agents tr[data-agent-id="${agent}"]`;
  const idOf = async (type: string, host: string) =>
    ((await agents()).find((a) => a.agent_type === type && a.host === host) as Agent).id;

  test('an admin sees every agent of the lab alive', async () => {
    await login('admin', ADMIN_PW, 'admin');
    await w.page.waitForFunction(
      () => {
        const rows = [...document.querySelectorAll('#agents tbody tr')];
        return rows.length === 3 && rows.every((r) => r.getAttribute('data-alive') === 'true');
      },
      undefined,
      { timeout: 20_000 },
    );
    const hosts = await w.page.$$eval('#agents tbody tr td:nth-child(2)', (tds) =>
      tds.map((td) => td.textContent).sort(),
    );
    assert.deepEqual(hosts, [hostA, hostA, hostB].sort());
    await w.screenshot('agents');
  });

  test('moving a network between DHCP agents changes its hosting', async () => {
    const a = await idOf('DHCP agent', hostA);
    const b = await idOf('DHCP agent', hostB);
    const hostOf = async () =>
      (
        (await c.http('GET', `/v2.0/networks/${ids.left}/dhcp-agents`)).body as { agents: Agent[] }
      ).agents.map((x) => x.id);
    const from = await waitFor('left scheduled to a DHCP agent', async () => {
      const h = await hostOf();
      return h.length === 1 ? h[0] : undefined;
    });
    const to = from === a ? b : a;
    await w.page.click('a[data-page=rehosting]');
    const row = w.page.locator(`#rehost-networks tr[data-id="${ids.left}"][data-from="${from}"]`);
    await row.locator('select[data-testid=target]').selectOption(to);
    await w.screenshot('rehosting');
    await row.locator('button[data-testid=move]').click();
    await w.page
      .locator(`#rehost-networks tr[data-id="${ids.left}"][data-from="${to}"]`)
      .waitFor({ timeout: 15_000 });
    assert.deepEqual(await hostOf(), [to]);
    await w.page.click('a[data-page=agents]');
    const hosted = w.page.locator(`${rowOf(to)} .hosted[data-kind=networks]`);
    await hosted.filter({ hasText: 'left' }).waitFor({ timeout: 15_000 });
    assert.equal(
      await w.page
        .locator(`${rowOf(from)} .hosted[data-kind=networks]`)
        .filter({ hasText: 'left' })
        .count(),
      0,
    );
  });

  test('the topology shows the router between the two networks', async () => {
    await w.page.click('a[data-page=topology]');
    const row = w.page.locator(`#connections tr[data-node="router:${ids.router}"]`);
    await row.waitFor({ timeout: 15_000 });
    const text = await row.locator('td').nth(1).textContent();
    assert.deepEqual(text?.split(', ').sort(), ['left', 'right']);
    const neighbours = await w.page.evaluate(
      (id) =>
        (
          window as unknown as {
            kumoTopology: {
              $id(id: string): {
                neighborhood(s: string): { map(f: (n: { id(): string }) => string): string[] };
              };
            };
          }
        ).kumoTopology
          .$id(`router:${id}`)
          .neighborhood('node')
          .map((n) => n.id())
          .sort(),
      ids.router,
    );
    assert.deepEqual(neighbours, [`net:${ids.left}`, `net:${ids.right}`].sort());
    assert.ok(await w.page.locator('#topology canvas').count(), 'Cytoscape drew no canvas');
    await w.screenshot('topology');
  });

  test('the other pages render their data without errors', async () => {
    for (const page of ['servers', 'volumes', 'loadbalancers']) {
      await w.page.click(`a[data-page=${page}]`);
      await w.page.locator('section h2').waitFor();
      await w.page.waitForFunction(() => !document.body.textContent?.includes('Loading…'));
      assert.equal(await w.page.locator('.error').count(), 0, `${page} shows an error`);
      await w.screenshot(page);
    }
  });

  test('disabling an agent', async () => {
    const l3 = await idOf('L3 agent', hostA);
    await w.page.click('a[data-page=agents]');
    await w.page.locator(`${rowOf(l3)} button[data-testid=disable]`).click();
    await w.page.locator(`${rowOf(l3)}[data-admin=false]`).waitFor({ timeout: 15_000 });
    assert.equal((await agents()).find((a) => a.id === l3)?.admin_state_up, false);
    await w.page.locator(`${rowOf(l3)} button[data-testid=enable]`).waitFor();
  });

  test('a killed agent turns dead without a reload', async () => {
    const b = await idOf('DHCP agent', hostB);
    await w.page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    await c.stop(dhcpB, 'SIGKILL');
    await w.page.locator(`${rowOf(b)}[data-alive=false]`).waitFor({ timeout: 20_000 });
    assert.equal(
      await w.page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
      true,
      'the page reloaded',
    );
    assert.match(
      (await w.page.locator(`${rowOf(b)} [data-testid=alive]`).textContent()) ?? '',
      /dead/,
    );
    await w.screenshot('agent-dead');
  });

  test('a member sees no agents', async () => {
    await w.page.click('header button');
    await login('viewer', MEMBER_PW, 'demo');
    await w.page.locator('a[data-page=agents]').click();
    await w.page.getByText('Agents are shown to admins only').waitFor();
    const session = await c.http('POST', '/dashboard/api/login', {
      username: 'viewer',
      password: MEMBER_PW,
      project: 'demo',
    });
    assert.equal(session.status, 201);
    const token = (session.body as { token: string }).token;
    const theirs = await c.http('GET', '/dashboard/api/agents', undefined, token);
    assert.deepEqual((theirs.body as { agents: unknown[] }).agents, []);
    assert.equal((await c.http('GET', '/dashboard/api/agents', undefined, null)).status, 401);
    await w.screenshot('member-agents');
  });

  test('no request left 127.0.0.1, no CSP violation, no console error', () => {
    assert.deepEqual(w.problems, []);
  });
});
