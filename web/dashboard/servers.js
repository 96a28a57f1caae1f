/**
 * Servers: state, power state, addresses and host of every server the viewer may see,
 * its console log on demand, and the power actions (start, stop, reboot) through Nova's
 * server action API.
 *
 * Invariant: an action only asks; the row changes when the feed reports the instance
 * changed and the list is read again.
 */
import { useState } from 'preact/hooks';
import { Action, ErrorLine, html, Status, useData } from './ui.js';

const POWER = ['NOSTATE', 'RUNNING', '', 'PAUSED', 'SHUTDOWN', '', 'CRASHED', 'SUSPENDED'];

const addresses = (s) =>
  Object.entries(s.addresses ?? {})
    .map(([net, ips]) => `${net}: ${ips.map((i) => i.addr).join(', ')}`)
    .join('; ');

function ServerRow({ client, server, onConsole }) {
  const act = (body) => client.post(`/compute/v2.1/servers/${server.id}/action`, body);
  return html`<tr data-server-id=${server.id}>
    <td>${server.name}</td>
    <td><${Status} value=${server.status} /></td>
    <td>${POWER[server['OS-EXT-STS:power_state']] ?? server['OS-EXT-STS:power_state']}</td>
    <td>${addresses(server)}</td>
    <td>${server['OS-EXT-SRV-ATTR:host'] ?? ''}</td>
    <td class="actions">
      <${Action} label="Start" testid="start" action=${() => act({ 'os-start': null })} />
      <${Action} label="Stop" testid="stop" action=${() => act({ 'os-stop': null })} />
      <${Action} label="Reboot" testid="reboot" action=${() => act({ reboot: { type: 'SOFT' } })} />
      <${Action} label="Console log" testid="console" action=${() => onConsole(server)} />
    </td>
  </tr>`;
}

export function ServersPage({ client, digest }) {
  const list = useData(() => client.get('/compute/v2.1/servers/detail'), [digest]);
  const [console, setConsole] = useState(null);
  const showConsole = async (server) => {
    const r = await client.post(`/compute/v2.1/servers/${server.id}/action`, {
      'os-getConsoleOutput': { length: 100 },
    });
    setConsole({ name: server.name, output: r.output });
  };
  const servers = list.data?.servers ?? [];
  return html`<section>
    <h2>Servers</h2>
    <${ErrorLine} error=${list.error} />
    ${
      servers.length
        ? html`<table class="grid" id="servers">
            <thead><tr><th>Name</th><th>Status</th><th>Power</th><th>Addresses</th><th>Host</th>
              <th></th></tr></thead>
            <tbody>${servers.map(
              (s) => html`<${ServerRow} key=${s.id} client=${client} server=${s}
                onConsole=${showConsole} />`,
            )}</tbody>
          </table>`
        : html`<p class="muted">${list.data ? 'No servers.' : 'Loading…'}</p>`
    }
    ${
      console &&
      html`<section class="console"><h3>Console log of ${console.name}</h3>
        <pre data-testid="console-output">${console.output}</pre></section>`
    }
  </section>`;
}
