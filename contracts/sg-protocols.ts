/**
 * Security group rule protocols: Neutron's stored form (a lower-case IANA name from
 * neutron-lib's IP_PROTOCOL_MAP, or a number 0–255 as text; NULL for any) to the IP
 * protocol number a firewall flow matches.
 *
 * Invariant: only the names of IP_PROTOCOL_MAP (plus its aliases icmpv6 and 'any') and
 * plain decimal numbers 0–255 map; anything else is `undefined`, never a guess, so a rule
 * with a protocol nobody can name never reaches a flow.
 */

/** neutron_lib.constants.IP_PROTOCOL_MAP, plus the alias `icmpv6` (IP_PROTOCOL_NAME_ALIASES). */
export const IP_PROTOCOL_MAP: Readonly<Record<string, number>> = {
  ah: 51,
  dccp: 33,
  egp: 8,
  esp: 50,
  gre: 47,
  hopopt: 0,
  icmp: 1,
  igmp: 2,
  ipip: 4,
  'ipv6-encap': 41,
  'ipv6-frag': 44,
  'ipv6-icmp': 58,
  icmpv6: 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  'ipv6-route': 43,
  ospf: 89,
  pgm: 113,
  rsvp: 46,
  sctp: 132,
  tcp: 6,
  udp: 17,
  udplite: 136,
  vrrp: 112,
};

/**
 * The protocol number of a stored protocol: null for any (NULL, or Neutron's `any`), a
 * number for a known name or a decimal 0–255, undefined for anything else.
 */
export function protocolNumber(stored: string | null): number | null | undefined {
  if (stored === null || stored === 'any') return null;
  if (Object.hasOwn(IP_PROTOCOL_MAP, stored)) return IP_PROTOCOL_MAP[stored];
  if (!/^(0|[1-9]\d{0,2})$/.test(stored)) return undefined;
  const n = Number(stored);
  return n <= 255 ? n : undefined;
}
