/**
 * A router's part of instance metadata: the haproxy in its qrouter namespace (agents/lib/
 * metadata-proxy.ts, listening on ROUTER_PROXY_PORT with X-Kumo-Router-ID) and the iptables
 * rules that lead guests to it and keep everyone else out, as Neutron's legacy router does
 * (neutron/agent/metadata/driver.py), in the L3 agent's own chains:
 * - nat PREROUTING: `-d 169.254.169.254/32 -i qr-+ -p tcp --dport 80 -j REDIRECT
 *   --to-ports 9697` (the guests' requests reach the proxy);
 * - mangle PREROUTING: the same match `-j MARK --set-xmark 0x1/0xffff`;
 * - filter INPUT: tcp/9697 with that mark is accepted, any other tcp/9697 dropped, so the
 *   proxy is reachable only through the redirect from an internal interface, never from the
 *   gateway side nor by a guest dialling the router's address directly.
 *
 * Invariants: with metadata off (no shared secret) a router has no proxy and no metadata
 * rule; the proxy's files live in `<router state dir>/metadata-proxy`, removed with the
 * router. Pure.
 */
import { METADATA_CIDR, ROUTER_PROXY_PORT } from '../../contracts/metadata.ts';
import type { IptablesTable, Rule } from '../../host/iptables/model.ts';
import type { ProxySpec } from '../lib/metadata-proxy.ts';

/** Neutron's metadata access mark (METADATA_ACCESS_MARK_MASK). */
export const METADATA_MARK = '0x1/0xffff';
const PORT = String(ROUTER_PROXY_PORT);

const fromGuests: Rule = [
  '-d',
  METADATA_CIDR,
  '-i',
  'qr-+',
  '-p',
  'tcp',
  '-m',
  'tcp',
  '--dport',
  '80',
];
const toProxy: Rule = ['-p', 'tcp', '-m', 'tcp', '--dport', PORT];

/** The rules per table and wrapper chain (merged into the router's NAT model). */
export function metadataRules(): Partial<Record<IptablesTable, Record<string, Rule[]>>> {
  return {
    nat: { PREROUTING: [[...fromGuests, '-j', 'REDIRECT', '--to-ports', PORT]] },
    mangle: { PREROUTING: [[...fromGuests, '-j', 'MARK', '--set-xmark', METADATA_MARK]] },
    filter: {
      INPUT: [
        [...toProxy, '-m', 'mark', '--mark', METADATA_MARK, '-j', 'ACCEPT'],
        [...toProxy, '-j', 'DROP'],
      ],
    },
  };
}

/** The router's proxy: `socket` is the agent's relay. */
export function routerProxy(
  routerId: string,
  netns: string,
  stateDir: string,
  socket: string,
): ProxySpec {
  return {
    netns,
    dir: proxyDirOf(stateDir),
    bind: { address: '0.0.0.0', port: ROUTER_PROXY_PORT },
    header: { name: 'X-Kumo-Router-ID', value: routerId },
    socket,
  };
}

export const proxyDirOf = (stateDir: string) => `${stateDir}/metadata-proxy`;

type Tables = Partial<Record<IptablesTable, Readonly<Record<string, readonly Rule[]>>>>;

/** `tables` with the metadata rules in front of each chain's own. */
export function withMetadataRules(tables: Tables): Tables {
  const out: Record<string, Record<string, readonly Rule[]>> = {};
  for (const [table, chains] of Object.entries(tables)) out[table] = { ...chains };
  for (const [table, chains] of Object.entries(metadataRules())) {
    const into = out[table] ?? {};
    for (const [chain, rules] of Object.entries(chains))
      into[chain] = [...rules, ...(into[chain] ?? [])];
    out[table] = into;
  }
  return out as Tables;
}
