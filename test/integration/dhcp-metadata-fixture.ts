/**
 * The fixture of dhcp-metadata.test.ts: one network with one isolated IPv4 subnet, its DHCP
 * port and one client port, as get_network_info answers it (`state` flips the subnet to
 * routed or the network to removed); the udhcpc script the client leases with; the DHCP
 * agent's kumo.conf. Pure data: the lab, agent and listener are the test's.
 */
import { randomUUID } from 'node:crypto';
import type { DhcpNetwork, DhcpPort } from '../../contracts/dhcp.ts';
import type { LabHost } from '../helpers/lab.ts';

export const SECRET = 'dhcp-metadata-test-secret';
export const NET = randomUUID();
const SUBNET = randomUUID();
export const INSTANCE = randomUUID();
export const PROJECT = randomUUID().replace(/-/g, '');
export const CLIENT_IP = '10.63.0.17';
const port = (n: number, owner: string): DhcpPort => ({
  id: randomUUID(),
  mac_address: `fa:16:3e:63:00:${n.toString(16).padStart(2, '0')}`,
  device_owner: owner,
  fixed_ips: [{ subnet_id: SUBNET, ip_address: `10.63.0.${n}` }],
});
export const DHCP = port(2, 'network:dhcp');
export const CLIENT = port(17, 'compute:nova');
export const TAP = `tap${DHCP.id.slice(0, 11)}`;

/** The network as get_network_info answers it (null once removed). */
export const state = { routed: false, exists: true };
export const networkInfo = (): DhcpNetwork | null =>
  state.exists
    ? {
        id: NET,
        revision_number: 1,
        mtu: 1450,
        subnets: [
          {
            id: SUBNET,
            cidr: '10.63.0.0/24',
            ip_version: '4',
            gateway_ip: '10.63.0.1',
            enable_dhcp: true,
            dns_nameservers: [],
            host_routes: [],
            routed: state.routed,
          },
        ],
        ports: [DHCP, CLIENT],
        dhcp_port: DHCP,
      }
    : null;

/** A udhcpc script that installs the address and option 121's routes and says what it got. */
export const SCRIPT = `#!/bin/sh
[ "$1" = bound ] || exit 0
ip route flush dev "$interface"
ip addr flush dev "$interface"
ip addr add "$ip/$mask" dev "$interface"
set -- $staticroutes
while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
echo "bound ip=$ip router=$router routes=$(echo $staticroutes | tr ' ' ,) ms=$(echo $msstaticroutes | tr ' ' ,)"
`;

/** The DHCP agent's kumo.conf on lab host `h`, `[dhcp] enable_isolated_metadata` as given. */
export function agentConfig(o: {
  host: string;
  statePath: string;
  prefix: string;
  transportUrl: string;
  h: LabHost;
  novaPort: number;
  isolated: boolean;
}): string {
  return [
    '[DEFAULT]',
    `host = ${o.host}`,
    `state_path = ${o.statePath}`,
    `netns_prefix = ${o.prefix}-`,
    `transport_url = ${o.transportUrl}`,
    '[agent]',
    'report_interval = 1',
    'resync_interval = 3600',
    '[ovs]',
    `ovsdb_connection = unix:${o.h.dbSocket}`,
    `vswitchd_netns = ${o.h.netns}`,
    '[dhcp]',
    `enable_isolated_metadata = ${o.isolated}`,
    '[metadata]',
    `metadata_proxy_shared_secret = ${SECRET}`,
    'nova_metadata_host = 127.0.0.1',
    `nova_metadata_port = ${o.novaPort}`,
    '',
  ].join('\n');
}
