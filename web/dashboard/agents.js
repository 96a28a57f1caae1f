/**
 * Agents: every agent with its type, host, liveness (with the age of its last heartbeat,
 * counted on screen between updates), admin state, what it hosts and the failures it
 * reported; enable, disable and delete act through Neutron's agent API.
 *
 * Invariant: the table is the live feed's overview as it arrived; an action changes
 * nothing on screen by itself, the next feed update shows its effect.
 */
import { useState } from 'preact/hooks';
import { Action, age, html, useTick } from './ui.js';

const KINDS = ['networks', 'routers', 'pools', 'volumes', 'instances'];

/** Neutron's `YYYY-MM-DD HH:MM:SS` (UTC) → milliseconds. */
const neutronMs = (t) => Date.parse(`${t.replace(' ', 'T')}Z`);

function Hosting({ hosting }) {
  const parts = KINDS.filter((k) => hosting[k].length).map(
    (k) =>
      html`<div class="hosted" data-kind=${k}>
        <span class="muted">${k}:</span> ${hosting[k].map((r) => r.name || r.id.slice(0, 8)).join(', ')}
      </div>`,
  );
  return parts.length ? parts : html`<span class="muted">nothing</span>`;
}

function Failures({ configurations }) {
  const lines = Object.entries(configurations)
    .filter(([k, v]) => k.startsWith('failed_') && v && Object.keys(v).length)
    .flatMap(([k, v]) =>
      Object.entries(v).map(([id, why]) => `${k.slice(7)} ${id.slice(0, 8)}: ${why}`),
    );
  return lines.length
    ? html`<ul class="failures">${lines.map((l) => html`<li>${l}</li>`)}</ul>`
    : html`<span class="muted">none</span>`;
}

function AgentRow({ agent, skewMs, now, client }) {
  const [confirming, setConfirming] = useState(false);
  const seconds = (now - skewMs - neutronMs(agent.heartbeat_timestamp)) / 1000;
  const setAdmin = (up) =>
    client.put(`/v2.0/agents/${agent.id}`, { agent: { admin_state_up: up } });
  return html`<tr data-agent-id=${agent.id} data-alive=${String(agent.alive)}
      data-admin=${String(agent.admin_state_up)}>
    <td>${agent.agent_type}</td>
    <td>${agent.host}</td>
    <td class=${agent.alive ? 'good' : 'bad'} data-testid="alive">
      ${agent.alive ? 'alive' : 'dead'} <span class="muted">· ${age(seconds)} ago</span>
    </td>
    <td data-testid="admin">${agent.admin_state_up ? 'UP' : 'DOWN'}</td>
    <td><${Hosting} hosting=${agent.hosting} /></td>
    <td><${Failures} configurations=${agent.configurations} /></td>
    <td class="actions">
      ${
        agent.admin_state_up
          ? html`<${Action} label="Disable" testid="disable" action=${() => setAdmin(false)} />`
          : html`<${Action} label="Enable" testid="enable" action=${() => setAdmin(true)} />`
      }
      ${
        confirming
          ? html`<${Action} label="Confirm delete" kind="danger" testid="confirm-delete"
              action=${() => client.del(`/v2.0/agents/${agent.id}`)} />`
          : html`<button data-testid="delete" onClick=${() => setConfirming(true)}>Delete</button>`
      }
    </td>
  </tr>`;
}

export function AgentsPage({ client, overview }) {
  const now = useTick(1000);
  if (!client.session.roles.includes('admin'))
    return html`<p class="muted">Agents are shown to admins only (Neutron's policy).</p>`;
  if (!overview) return html`<p class="muted">Waiting for the live feed…</p>`;
  const skewMs = overview.receivedAt - Date.parse(overview.now);
  const alive = overview.agents.filter((a) => a.alive).length;
  return html`<section>
    <h2>Agents <span class="muted">${alive} of ${overview.agents.length} alive</span></h2>
    <table class="grid" id="agents">
      <thead><tr><th>Type</th><th>Host</th><th>Alive</th><th>Admin state</th>
        <th>Hosts</th><th>Failures</th><th></th></tr></thead>
      <tbody>
        ${overview.agents.map(
          (a) => html`<${AgentRow} key=${a.id} agent=${a} skewMs=${skewMs} now=${now}
            client=${client} />`,
        )}
      </tbody>
    </table>
  </section>`;
}
