/**
 * A router's NAT as an iptables model under the `kumo-l3` chain prefix (host/iptables):
 * per floating IP a DNAT in PREROUTING and OUTPUT and an SNAT; SNAT of the internal
 * subnets to the gateway IP when `enableSnat`, only for traffic leaving through qg-.
 *
 * Placeholder body holding the interface agreed with the NAT engineer's branch (whose
 * nat.ts replaces this one at merge). Invariant: pure; every value comes from
 * agents/l3/desired.ts already validated, and validateModel checks every token again.
 */
import type { IptablesModel, Rule } from '../../host/iptables/model.ts';

export interface NatInput {
  qgDevice: string;
  /** The IPv4 address on qg- (null: none). */
  gatewayIp: string | null;
  enableSnat: boolean;
  /** IPv4 subnet CIDRs of the router's interfaces. */
  internalCidrs: string[];
  floatingIps: { floatingIp: string; fixedIp: string }[];
}

export const L3_CHAIN_PREFIX = 'kumo-l3';

export function natModel(input: NatInput): IptablesModel {
  const fips = input.floatingIps;
  const dnat: Rule[] = fips.map((f) => [
    '-d',
    `${f.floatingIp}/32`,
    '-j',
    'DNAT',
    '--to-destination',
    f.fixedIp,
  ]);
  const snat: Rule[] = [
    ...fips.map((f) => [
      ...['-s', `${f.fixedIp}/32`, '-o', input.qgDevice],
      ...['-j', 'SNAT', '--to-source', f.floatingIp],
    ]),
    ...(input.enableSnat && input.gatewayIp
      ? input.internalCidrs.map((c) => [
          '-s',
          c,
          '-o',
          input.qgDevice,
          '-j',
          'SNAT',
          '--to-source',
          input.gatewayIp as string,
        ])
      : []),
  ];
  return {
    family: 4,
    prefix: L3_CHAIN_PREFIX,
    tables: { nat: { PREROUTING: dnat, OUTPUT: dnat, POSTROUTING: snat } },
  };
}
