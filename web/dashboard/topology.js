/**
 * Topology: networks, routers, servers, load balancer VIPs and floating IPs as a graph
 * (Cytoscape.js lays it out and draws it), in the spirit of Horizon's network topology,
 * with the same connections listed as text beneath for keyboards and screen readers.
 *
 * Invariant: the graph is built from what the viewer's token reads (ports tie the rest
 * together: a router's interfaces and gateway, a server's NICs, a VIP's port, a floating
 * IP's port); nothing is drawn that the lists do not say.
 */
import cytoscape from 'cytoscape';
import { useEffect, useRef } from 'preact/hooks';
import { ErrorLine, html, useData } from './ui.js';

const STYLE = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'font-size': 10,
      width: 28,
      height: 28,
      'text-wrap': 'wrap',
      'text-valign': 'bottom',
    },
  },
  { selector: 'node.network', style: { shape: 'round-rectangle', 'background-color': '#3a7bd5' } },
  { selector: 'node.external', style: { 'background-color': '#7b5ea7' } },
  { selector: 'node.router', style: { shape: 'diamond', 'background-color': '#e08a1e' } },
  { selector: 'node.server', style: { shape: 'ellipse', 'background-color': '#2e9e5b' } },
  { selector: 'node.vip', style: { shape: 'hexagon', 'background-color': '#c2185b' } },
  {
    selector: 'node.fip',
    style: { shape: 'tag', 'background-color': '#888', width: 16, height: 16 },
  },
  { selector: 'edge', style: { width: 2, 'line-color': '#bbb', 'curve-style': 'bezier' } },
];

async function load(client) {
  const g = (p) => client.get(p);
  const [nets, subs, routers, ports, servers, fips, vips] = await Promise.all([
    g('/v2.0/networks'),
    g('/v2.0/subnets'),
    g('/v2.0/routers'),
    g('/v2.0/ports'),
    g('/compute/v2.1/servers/detail'),
    g('/v2.0/floatingips'),
    g('/v2.0/lb/vips'),
  ]);
  return {
    networks: nets.networks,
    subnets: subs.subnets,
    routers: routers.routers,
    ports: ports.ports,
    servers: servers.servers,
    floatingips: fips.floatingips,
    vips: vips.vips,
  };
}

/** The graph's nodes and edges, and the same connections as text. */
export function graphOf(d) {
  const nodes = [];
  const edges = new Map();
  const cidrs = new Map();
  for (const s of d.subnets) cidrs.set(s.network_id, [...(cidrs.get(s.network_id) ?? []), s.cidr]);
  const node = (id, label, cls) => nodes.push({ data: { id, label }, classes: cls });
  const edge = (a, b) => {
    if (a !== b && nodes.some((n) => n.data.id === a) && nodes.some((n) => n.data.id === b))
      edges.set([a, b].sort().join('|'), { data: { id: `${a}|${b}`, source: a, target: b } });
  };
  for (const n of d.networks)
    node(
      `net:${n.id}`,
      `${n.name || n.id.slice(0, 8)}\n${(cidrs.get(n.id) ?? []).join(' ')}`,
      n['router:external'] ? 'network external' : 'network',
    );
  for (const r of d.routers) node(`router:${r.id}`, r.name || r.id.slice(0, 8), 'router');
  for (const s of d.servers) node(`server:${s.id}`, s.name, 'server');
  for (const v of d.vips) node(`vip:${v.id}`, `${v.name}\n${v.address}`, 'vip');
  for (const f of d.floatingips) node(`fip:${f.id}`, f.floating_ip_address, 'fip');
  for (const r of d.routers)
    if (r.external_gateway_info?.network_id)
      edge(`router:${r.id}`, `net:${r.external_gateway_info.network_id}`);
  for (const p of d.ports) {
    const net = `net:${p.network_id}`;
    if (p.device_owner === 'network:router_interface') edge(`router:${p.device_id}`, net);
    else if (p.device_owner.startsWith('compute:')) edge(`server:${p.device_id}`, net);
  }
  const portById = new Map(d.ports.map((p) => [p.id, p]));
  for (const v of d.vips) {
    const port = portById.get(v.port_id);
    if (port) edge(`vip:${v.id}`, `net:${port.network_id}`);
  }
  const vipByPort = new Map(d.vips.map((v) => [v.port_id, v.id]));
  for (const f of d.floatingips) {
    edge(`fip:${f.id}`, `net:${f.floating_network_id}`);
    if (vipByPort.has(f.port_id)) edge(`fip:${f.id}`, `vip:${vipByPort.get(f.port_id)}`);
    const port = f.port_id ? portById.get(f.port_id) : undefined;
    if (port?.device_owner.startsWith('compute:')) edge(`fip:${f.id}`, `server:${port.device_id}`);
  }
  return { nodes, edges: [...edges.values()] };
}

function Connections({ graph }) {
  const label = new Map(graph.nodes.map((n) => [n.data.id, n.data.label.split('\n')[0]]));
  const of = (id) =>
    graph.edges.flatMap((e) =>
      e.data.source === id ? [e.data.target] : e.data.target === id ? [e.data.source] : [],
    );
  const rows = graph.nodes.filter((n) => !n.classes.startsWith('network'));
  return html`<table class="grid" id="connections">
    <thead><tr><th>Node</th><th>Connected to</th></tr></thead>
    <tbody>${rows.map(
      (n) => html`<tr data-node=${n.data.id}>
        <td>${n.classes.split(' ')[0]} ${label.get(n.data.id)}</td>
        <td>${of(n.data.id)
          .map((id) => label.get(id))
          .join(', ')}</td>
      </tr>`,
    )}</tbody>
  </table>`;
}

export function TopologyPage({ client, digest }) {
  const { data, error } = useData(() => load(client), [digest]);
  const box = useRef(null);
  const graph = data ? graphOf(data) : undefined;
  const shape = graph ? JSON.stringify([graph.nodes, graph.edges]) : '';
  useEffect(() => {
    if (!graph || !box.current) return;
    const cy = cytoscape({
      container: box.current,
      elements: [...graph.nodes, ...graph.edges],
      style: STYLE,
      maxZoom: 1.5,
      layout: { name: 'cose', animate: false, padding: 30 },
    });
    window.kumoTopology = cy;
    return () => cy.destroy();
  }, [shape]);
  return html`<section>
    <h2>Topology</h2>
    <${ErrorLine} error=${error} />
    <div id="topology" ref=${box}></div>
    ${graph && html`<${Connections} graph=${graph} />`}
  </section>`;
}
