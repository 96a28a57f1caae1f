/**
 * LBaaS agent fixtures: an LbPool as get_pool_info answers it (two members, an HTTP
 * monitor, a VIP on 10.80.0.0/24), the agent's settings, and an empty observation, for the
 * unit tests of desired/plan/stats and the integration test on a real host.
 *
 * Invariant: every pool returned is a fresh object that passes parseLbPoolInfo, so a test
 * may edit it freely.
 */

import type { LbSettings } from '../../agents/lbaas/desired.ts';
import type { ObservedPool } from '../../agents/lbaas/observe.ts';
import type { LbMember, LbMonitor, LbPool } from '../../contracts/lbaas.ts';

export const POOL = '0f1e2d3c-4b5a-4968-8776-655443322110';
export const VIP = '1a2b3c4d-5e6f-4a0b-9c1d-2e3f4a5b6c7d';
export const VIP_PORT = '2b3c4d5e-6f70-4b1c-8d2e-3f4a5b6c7d8e';
export const M1 = '3c4d5e6f-7081-4c2d-9e3f-4a5b6c7d8e9f';
export const M2 = '4d5e6f70-8192-4d3e-8f40-5b6c7d8e9fa0';
export const MONITOR = '5e6f7081-92a3-4e4f-9051-6c7d8e9fa0b1';
export const SUBNET = '6f708192-a3b4-4f50-8162-7d8e9fa0b1c2';
export const NETWORK = '708192a3-b4c5-4061-9273-8e9fa0b1c2d3';

export const member = (id: string, address: string, weight = 1): LbMember => ({
  id,
  address,
  protocol_port: 80,
  weight,
  admin_state_up: true,
});

/** The seed's monitor: HTTP GET / every 3 s, 3 retries, 200 expected. */
export const monitorOf = (over: Partial<LbMonitor> = {}): LbMonitor => ({
  id: MONITOR,
  type: 'HTTP',
  delay: 3,
  timeout: 3,
  max_retries: 3,
  http_method: 'GET',
  url_path: '/',
  expected_codes: '200',
  ...over,
});

/** The seed's pool: ROUND_ROBIN over HTTP, two members, an HTTP monitor, a VIP on :80. */
export function poolOf(over: Partial<LbPool> = {}): LbPool {
  return {
    id: POOL,
    revision_number: 3,
    admin_state_up: true,
    protocol: 'HTTP',
    lb_method: 'ROUND_ROBIN',
    vip: {
      id: VIP,
      address: '10.80.0.100',
      protocol_port: 80,
      protocol: 'HTTP',
      connection_limit: -1,
      session_persistence: null,
      admin_state_up: true,
      port: {
        id: VIP_PORT,
        network_id: NETWORK,
        mac_address: 'fa:16:3e:80:00:64',
        mtu: 1450,
        ip_address: '10.80.0.100',
        subnet_id: SUBNET,
        cidr: '10.80.0.0/24',
        gateway_ip: '10.80.0.1',
      },
    },
    members: [member(M1, '10.80.0.11'), member(M2, '10.80.0.12')],
    health_monitor: monitorOf(),
    ack_wanted: true,
    ...over,
  };
}

export function settingsOf(stateRoot: string, over: Partial<LbSettings> = {}): LbSettings {
  return {
    stateRoot,
    host: 'lbaas-test-host',
    intBridge: 'br-int',
    netnsPrefix: 'klt-',
    fileLimit: 20_000,
    ...over,
  };
}

/** A host with nothing of the pool (its haproxy directory as given). */
export const emptyObserved = (dir: string): ObservedPool => ({
  stateDirExists: false,
  stateDirMode: null,
  owned: false,
  netnsExists: false,
  links: [],
  ovsPorts: [],
  routes: [],
  haproxy: { dir, dirExists: false, config: null, loaded: null, pid: null, inNetns: false },
  device: null,
});
