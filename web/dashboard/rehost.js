/**
 * Rehosting: move a network between DHCP agents, a router between L3 agents, a pool
 * between LBaaS agents, with the calls the CLI makes (dhcp-agent-network-add/remove,
 * l3-agent-router-remove/add, and for pools Kumo's loadbalancer-pools add).
 *
 * Invariants: a move adds to the target before it removes from the source where the
 * resource may have several agents (networks), so DHCP never has a gap; a router has one
 * agent, so it is removed first as Neutron requires and put back if the add fails; a
 * pool moves in one call; targets are alive, admin-up agents of the right type that do
 * not host it already.
 */
import { useState } from 'preact/hooks';
import { Action, ErrorLine, html, useData } from './ui.js';

const TYPES = {
  networks: 'DHCP agent',
  routers: 'L3 agent',
  pools: 'Loadbalancer agent',
};

async function moveNetwork(client, id, from, to) {
  await client.post(`/v2.0/agents/${to}/dhcp-networks`, { network_id: id });
  if (from) await client.del(`/v2.0/agents/${from}/dhcp-networks/${id}`);
}

/** Neutron hosts a router on one agent: remove, then add; a failed add puts it back. */
async function moveRouter(client, id, from, to) {
  if (from) await client.del(`/v2.0/agents/${from}/l3-routers/${id}`);
  try {
    await client.post(`/v2.0/agents/${to}/l3-routers`, { router_id: id });
  } catch (e) {
    if (from)
      await client.post(`/v2.0/agents/${from}/l3-routers`, { router_id: id }).catch(() => {});
    throw e;
  }
}

async function movePool(client, id, _from, to) {
  await client.post(`/v2.0/agents/${to}/loadbalancer-pools`, { pool_id: id });
}

const MOVES = { networks: moveNetwork, routers: moveRouter, pools: movePool };

function MoveRow({ client, kind, item, from, agents }) {
  const targets = agents.filter(
    (a) =>
      a.agent_type === TYPES[kind] &&
      a.alive &&
      a.admin_state_up &&
      !a.hosting[kind].some((r) => r.id === item.id),
  );
  const [target, setTarget] = useState('');
  const chosen = target || targets[0]?.id || '';
  return html`<tr data-kind=${kind} data-id=${item.id} data-from=${from?.id ?? ''}>
    <td>${item.name || item.id}</td>
    <td data-testid="hosted-by">${from ? from.host : html`<span class="muted">no agent</span>`}</td>
    <td>${
      targets.length > 0 &&
      html`<select data-testid="target" value=${chosen} onChange=${(e) => setTarget(e.target.value)}>
        ${targets.map((a) => html`<option value=${a.id}>${a.host}</option>`)}
      </select>`
    }</td>
    <td>${
      chosen
        ? html`<${Action} label=${from ? 'Move' : 'Host'} testid="move"
            action=${() => MOVES[kind](client, item.id, from?.id, chosen)} />`
        : html`<span class="muted">no other agent</span>`
    }</td>
  </tr>`;
}

function Section({ client, kind, title, items, agents }) {
  const rows = items.flatMap((item) => {
    const hosts = agents.filter((a) => a.hosting[kind].some((r) => r.id === item.id));
    const froms = hosts.length ? hosts : [undefined];
    return froms.map(
      (from) => html`<${MoveRow} key=${`${item.id}:${from?.id}`} client=${client} kind=${kind}
        item=${item} from=${from} agents=${agents} />`,
    );
  });
  return html`<section>
    <h3>${title}</h3>
    ${
      rows.length
        ? html`<table class="grid" id=${`rehost-${kind}`}>
            <thead><tr><th>Name</th><th>Hosted by</th><th>Move to</th><th></th></tr></thead>
            <tbody>${rows}</tbody>
          </table>`
        : html`<p class="muted">none</p>`
    }
  </section>`;
}

export function RehostPage({ client, overview, digest }) {
  const lists = useData(async () => {
    const [n, r, p] = await Promise.all([
      client.get('/v2.0/networks'),
      client.get('/v2.0/routers'),
      client.get('/v2.0/lb/pools'),
    ]);
    return { networks: n.networks, routers: r.routers, pools: p.pools };
  }, [digest]);
  if (!client.session.roles.includes('admin'))
    return html`<p class="muted">Rehosting is for admins only.</p>`;
  if (!overview || !lists.data) return html`<${ErrorLine} error=${lists.error} />`;
  const agents = overview.agents;
  const networks = lists.data.networks.filter((n) => !n['router:external'] || n.subnets.length);
  return html`<section>
    <h2>Rehosting</h2>
    <${ErrorLine} error=${lists.error} />
    <${Section} client=${client} kind="networks" title="Networks (DHCP agents)"
      items=${networks} agents=${agents} />
    <${Section} client=${client} kind="routers" title="Routers (L3 agents)"
      items=${lists.data.routers} agents=${agents} />
    <${Section} client=${client} kind="pools" title="Pools (LBaaS agents)"
      items=${lists.data.pools} agents=${agents} />
  </section>`;
}
