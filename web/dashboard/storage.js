/**
 * Volumes and load balancers with their statuses: Cinder's volume list (every project's
 * for an admin), and LBaaS pools with their VIP, members and hosting agent.
 *
 * Invariant: read-only views, re-read whenever the live feed reports a change.
 */
import { ErrorLine, html, Status, useData } from './ui.js';

export function VolumesPage({ client, digest }) {
  const admin = client.session.roles.includes('admin');
  const path = `/volume/v3/${client.session.project.id}/volumes/detail${admin ? '?all_tenants=1' : ''}`;
  const { data, error } = useData(() => client.get(path), [digest]);
  const volumes = data?.volumes ?? [];
  return html`<section>
    <h2>Volumes</h2>
    <${ErrorLine} error=${error} />
    <table class="grid" id="volumes">
      <thead><tr><th>Name</th><th>Size</th><th>Status</th><th>Type</th><th>Attached to</th>
        ${admin && html`<th>Host</th>`}</tr></thead>
      <tbody>${volumes.map(
        (v) => html`<tr data-volume-id=${v.id}>
          <td>${v.name || v.id}</td><td>${v.size} GB</td><td><${Status} value=${v.status} /></td>
          <td>${v.volume_type}</td>
          <td>${v.attachments.map((a) => `${a.server_id.slice(0, 8)} ${a.device}`).join(', ')}</td>
          ${admin && html`<td>${v['os-vol-host-attr:host'] ?? ''}</td>`}
        </tr>`,
      )}</tbody>
    </table>
  </section>`;
}

export function LoadBalancersPage({ client, digest, overview }) {
  const { data, error } = useData(async () => {
    const [p, v, m] = await Promise.all([
      client.get('/v2.0/lb/pools'),
      client.get('/v2.0/lb/vips'),
      client.get('/v2.0/lb/members'),
    ]);
    return { pools: p.pools, vips: v.vips, members: m.members };
  }, [digest]);
  const hostOf = (poolId) =>
    overview?.agents.find((a) => a.hosting.pools.some((p) => p.id === poolId))?.host ?? '';
  return html`<section>
    <h2>Load balancers</h2>
    <${ErrorLine} error=${error} />
    ${(data?.pools ?? []).map((pool) => {
      const vip = data.vips.find((v) => v.pool_id === pool.id);
      const members = data.members.filter((m) => m.pool_id === pool.id);
      return html`<article class="pool" data-pool-id=${pool.id}>
        <h3>${pool.name} <${Status} value=${pool.status} />
          <span class="muted">${pool.protocol} ${pool.lb_method} ${hostOf(pool.id)}</span></h3>
        <p>VIP: ${vip ? html`${vip.address}:${vip.protocol_port} <${Status} value=${vip.status} />` : 'none'}</p>
        <table class="grid">
          <thead><tr><th>Member</th><th>Weight</th><th>Status</th></tr></thead>
          <tbody>${members.map(
            (m) => html`<tr><td>${m.address}:${m.protocol_port}</td><td>${m.weight}</td>
              <td><${Status} value=${m.status} /></td></tr>`,
          )}</tbody>
        </table>
      </article>`;
    })}
  </section>`;
}
