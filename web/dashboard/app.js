/**
 * The dashboard shell: login, the page menu (the URL's hash names the page), and the live
 * feed every page draws from (agents overview, change digest).
 *
 * Invariant: one feed per open tab, started on login and stopped on logout or when the
 * token is refused; pages get the client, the latest overview and digest, nothing global.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AgentsPage } from './agents.js';
import { createClient, loadSession, login, saveSession } from './api.js';
import { RehostPage } from './rehost.js';
import { ServersPage } from './servers.js';
import { LoadBalancersPage, VolumesPage } from './storage.js';
import { html } from './ui.js';

/** The topology page and Cytoscape.js (440 KB) load when first opened, not with the shell. */
function TopologyPage(props) {
  const [Page, setPage] = useState(null);
  useEffect(() => {
    import('./topology.js').then((m) => setPage(() => m.TopologyPage));
  }, []);
  return Page ? html`<${Page} ...${props} />` : html`<p class="muted">Loading…</p>`;
}

const PAGES = {
  agents: ['Agents', AgentsPage],
  rehosting: ['Rehosting', RehostPage],
  topology: ['Topology', TopologyPage],
  servers: ['Servers', ServersPage],
  volumes: ['Volumes', VolumesPage],
  loadbalancers: ['Load balancers', LoadBalancersPage],
};

function Login({ onLogin }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    setBusy(true);
    setError('');
    try {
      onLogin(await login(Object.fromEntries(f.entries())));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="login" onSubmit=${submit}>
    <h1>Kumo</h1>
    <label>User <input name="username" autocomplete="username" required /></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required /></label>
    <label>Project <input name="project" required /></label>
    <label>Domain <input name="domain" value="Default" required /></label>
    <button type="submit" disabled=${busy}>Log in</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

const pageOfHash = (admin) => {
  const name = location.hash.slice(1);
  return PAGES[name] ? name : admin ? 'agents' : 'servers';
};

function Shell({ session, onLogout }) {
  const admin = session.roles.includes('admin');
  const [page, setPage] = useState(pageOfHash(admin));
  const [overview, setOverview] = useState(null);
  const [digest, setDigest] = useState('');
  const [live, setLive] = useState('connecting');
  const [client] = useState(() => createClient(session, onLogout));
  useEffect(() => {
    const onHash = () => setPage(pageOfHash(admin));
    addEventListener('hashchange', onHash);
    const stop = client.feed({
      agents: (o) => setOverview({ ...o, receivedAt: Date.now() }),
      changed: (c) => setDigest(c.digest),
      status: setLive,
    });
    return () => {
      stop();
      removeEventListener('hashchange', onHash);
    };
  }, [client, admin]);
  const Page = PAGES[page][1];
  return html`<div class="shell">
    <header>
      <strong>Kumo</strong>
      <nav>${Object.entries(PAGES).map(
        ([id, [label]]) =>
          html`<a href=${`#${id}`} class=${id === page ? 'current' : ''} data-page=${id}>${label}</a>`,
      )}</nav>
      <span class=${`live ${live}`} data-testid="feed">${live}</span>
      <span class="muted">${session.user} · ${session.project.name}</span>
      <button onClick=${onLogout}>Log out</button>
    </header>
    <${Page} client=${client} overview=${overview} digest=${digest} />
  </div>`;
}

function App() {
  const [session, setSession] = useState(loadSession());
  const set = (s) => {
    saveSession(s);
    setSession(s);
  };
  return session
    ? html`<${Shell} key=${session.token} session=${session} onLogout=${() => set(null)} />`
    : html`<${Login} onLogin=${set} />`;
}

const root = document.getElementById('app');
root.replaceChildren();
render(html`<${App} />`, root);
