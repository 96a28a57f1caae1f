/**
 * DHCP scheduling decisions, pure: which eligible agents a network should be bound to,
 * and the deterministic device_id of a scheduler-made DHCP port.
 *
 * Invariant: the same agents and bindings always give the same plan — least loaded
 * first, ties by host name, never a dead or admin-down agent.
 */
import { createHash } from 'node:crypto';

const NAMESPACE_DNS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';

/** RFC 4122 name-based UUID (SHA-1), as Python's uuid.uuid5. */
export function uuid5(namespace: string, name: string): string {
  const hash = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  const b = hash.subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x50;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Neutron's DHCP port device_id: `dhcp<uuid5(NAMESPACE_DNS, host)>-<network_id>`. */
export function dhcpDeviceId(host: string, networkId: string): string {
  return `dhcp${uuid5(NAMESPACE_DNS, host)}-${networkId}`;
}

// ---------------------------------------------------------------- planning (pure)

export interface DhcpAgentInfo {
  id: string;
  host: string;
  /** Alive and admin-up: may be scheduled to. */
  eligible: boolean;
  /** Networks bound to it. */
  load: number;
}

export interface BindingPlan {
  add: { networkId: string; agentId: string }[];
  remove: { networkId: string; agentId: string }[];
}

/**
 * The binding changes for `networks` (each needing DHCP), given the current bindings and
 * agents. Pure; `agents[].load` is updated as bindings are planned so one sweep spreads
 * networks over agents.
 */
export function planBindings(
  networks: readonly string[],
  bindings: ReadonlyMap<string, readonly string[]>,
  agents: DhcpAgentInfo[],
  perNetwork: number,
  failover: boolean,
): BindingPlan {
  const byId = new Map(agents.map((a) => [a.id, a]));
  const plan: BindingPlan = { add: [], remove: [] };
  for (const networkId of [...networks].sort()) {
    const hosting = new Set(bindings.get(networkId) ?? []);
    const candidates = () =>
      agents
        .filter((a) => a.eligible && !hosting.has(a.id))
        .sort((x, y) => x.load - y.load || (x.host < y.host ? -1 : x.host > y.host ? 1 : 0));
    const add = (agent: DhcpAgentInfo) => {
      hosting.add(agent.id);
      agent.load++;
      plan.add.push({ networkId, agentId: agent.id });
    };
    if (failover) {
      for (const agentId of [...hosting]) {
        const agent = byId.get(agentId);
        if (agent?.eligible) continue;
        const eligibleHosting = [...hosting].filter((id) => byId.get(id)?.eligible).length;
        const replacement = candidates()[0];
        if (!replacement && eligibleHosting < perNetwork) continue;
        hosting.delete(agentId);
        if (agent) agent.load--;
        plan.remove.push({ networkId, agentId });
        if (replacement && eligibleHosting < perNetwork) add(replacement);
      }
    }
    while (hosting.size < perNetwork) {
      const next = candidates()[0];
      if (!next) break;
      add(next);
    }
  }
  return plan;
}
