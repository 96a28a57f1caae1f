/**
 * Generators and checks for the compute and OVS renderer property test
 * (test/integration/renderers-property-agents.test.ts): request bodies around what the
 * API accepts (names XML must escape, every provider type and segmentation id, fixed IPs
 * anywhere), a small well-formedness check of the domain XML, and the OVS host state an
 * agent would observe after wiring the described ports.
 *
 * Invariant: deterministic for the Rng's seed, so a failure replays.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { parseKumoMetadata } from '../../agents/compute/observe.ts';
import type { OvsPort, OvsState } from '../../agents/ovs/observe.ts';
import { parseIp } from '../../contracts/inet.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import type { DeviceDetails } from '../../contracts/l2.ts';
import type { Subnet } from '../../contracts/network.ts';
import { portDevice } from '../../host/ip/names.ts';
import { cidrOf, ipIn, mac, name, type Rng } from './api-values.ts';

export type Body = Record<string, unknown>;

/* ------------------------------------------------------------ generators */

/** Beyond api-values' names: what XML must escape, marks, the replacement character;
 * rarely (EDGE) what a domain cannot carry or Nova's name rule refuses: format characters,
 * private use, beyond the BMP, separators, controls, non-characters, a lone surrogate. */
const XML_CHARS = [
  ...['a', 'Z', '0', ' ', '-', 'é', '日', '<', '>', '&', '"', "'", ']]>', '&amp;'],
  ...['\u0301', '\ufffd'],
];
const EDGE = [
  ...['\ufeff', '\u200b', '\ue000', '😀', '\u{10ffff}', '\u{1fffe}'],
  ...['\u2028', '\u2029', '\u0085', '\t', '\ufffe', '\uffff', '\ud83d'],
];
export function xmlName(r: Rng): string {
  if (r.chance(0.1)) return name(r);
  const n = r.chance(0.9) ? r.pick([1, 3, 12, 60, 200]) : 255;
  const chars = Array.from({ length: n }, () => (r.chance(0.6) ? 'v' : r.pick(XML_CHARS)));
  if (r.chance(0.1)) chars.splice(r.int(0, n), 0, r.pick(EDGE));
  return chars.join('').slice(0, r.chance(0.95) ? 255 : 300);
}

/** A valid host name (the contracts' HOSTNAME), for the peers' tunnel_sync. */
export function hostName(r: Rng): string {
  const label = () =>
    Array.from({ length: r.int(1, 12) }, () => r.pick([...'abcxyz019-_'])).join('');
  const fix = (l: string) => l.replace(/^[-_]+|[-_]+$/g, '') || 'h';
  return Array.from({ length: r.int(1, 3) }, () => fix(label())).join('.');
}

const sized = (r: Rng, small: number, edges: number[]) =>
  r.chance(0.9) ? r.int(1, small) : r.pick(edges);

export function flavorBody(r: Rng): Body {
  const flavor: Body = {
    name: xmlName(r),
    vcpus: sized(r, 8, [1, 512, 513, 1024]),
    ram: sized(r, 4096, [15, 16, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1, 2 ** 31 - 1]),
    disk: r.chance(0.3) ? 0 : sized(r, 40, [0, 1, 2 ** 31 - 1]),
  };
  if (r.chance(0.5)) flavor.id = `f${r.int(0, 1e9)}${r.pick(['', '.x', ' y', '-_'])}`;
  return { flavor };
}

export function networkBody(r: Rng): Body {
  const network: Body = { name: xmlName(r) };
  const type = r.pick(['vxlan', 'gre', 'flat', undefined] as const);
  if (type) network['provider:network_type'] = type;
  if (type === 'flat' || r.chance(0.1))
    network['provider:physical_network'] = r.pick(['physnet1', 'ph.2', 'x_-.', hostName(r)]);
  if (type !== 'flat' && r.chance(0.5))
    network['provider:segmentation_id'] = r.pick([
      0,
      1,
      r.int(2, 5000),
      r.int(1, 2 ** 24 - 1),
      2 ** 24 - 1,
      2 ** 24,
      2 ** 32 - 1,
      String(r.int(1, 99)),
    ]);
  if (r.chance(0.3)) network.mtu = r.pick([68, 576, 1280, 1450, 1458, 1500, 9000]);
  if (r.chance(0.1)) network.admin_state_up = false;
  return { network };
}

export function subnetBody(r: Rng, networkId: string): Body {
  const version = r.chance(0.6) ? 4 : 6;
  const c = cidrOf(r, version);
  const body: Body = { network_id: networkId, cidr: c.text, ip_version: version };
  if (r.chance(0.3)) body.name = xmlName(r);
  if (r.chance(0.2)) body.gateway_ip = r.chance(0.3) ? null : ipIn(r, version, c.network, c.prefix);
  return { subnet: body };
}

export function fixedIp(r: Rng, subnets: readonly Subnet[]) {
  const s = r.pick(subnets);
  const [net = '', prefix = '0'] = s.cidr.split('/');
  return r.chance(0.2)
    ? { subnet_id: s.id }
    : { subnet_id: s.id, ip_address: ipIn(r, s.ip_version, parseIp(net)?.value ?? 0n, +prefix) };
}

export function portBody(
  r: Rng,
  networkId: string,
  subnets: readonly Subnet[],
  host: string,
): Body {
  const port: Body = { network_id: networkId };
  if (r.chance(0.5)) port.name = xmlName(r);
  if (r.chance(0.4)) port.mac_address = mac(r);
  if (r.chance(0.2)) port.admin_state_up = r.pick([false, 'False', 0, true]);
  if (host !== '') port['binding:host_id'] = host;
  if (subnets.length && r.chance(0.5))
    port.fixed_ips = Array.from({ length: r.int(1, 2) }, () => fixedIp(r, subnets));
  return { port };
}

/* ------------------------------------------------------- the XML's checks */

/** Characters XML 1.0 can carry (its `Char` production). */
const NON_XML = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
const RAW_TEXT = /[<>]|&(?!(?:lt|gt|amp|quot|apos);)/;
const TAG = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*='[^']*')*)\s*(\/?)>/y;

/** Why `xml` is not one well-formed element with every value escaped; undefined if it is. */
function xmlProblem(xml: string): string | undefined {
  const bad = NON_XML.exec(xml);
  if (bad) return `U+${bad[0].codePointAt(0)?.toString(16)} is not an XML character`;
  const open: string[] = [];
  let roots = 0;
  for (let at = 0; at < xml.length; ) {
    const lt = xml.indexOf('<', at);
    const text = xml.slice(at, lt < 0 ? undefined : lt);
    if (RAW_TEXT.test(text)) return `unescaped text ${JSON.stringify(text)}`;
    if (open.length === 0 && text.trim()) return `text outside the root: ${text}`;
    if (lt < 0) break;
    TAG.lastIndex = lt;
    const m = TAG.exec(xml);
    if (!m) return `not a tag at ${lt}: ${JSON.stringify(xml.slice(lt, lt + 80))}`;
    const [, close, tag, attrs = '', empty] = m;
    for (const [, v] of attrs.matchAll(/='([^']*)'/g))
      if (RAW_TEXT.test(v as string)) return `unescaped attribute ${JSON.stringify(v)}`;
    if (close) {
      if (open.pop() !== tag) return `</${tag}> closes nothing open`;
    } else {
      if (open.length === 0) roots++;
      if (!empty) open.push(tag as string);
    }
    at = TAG.lastIndex;
  }
  if (open.length) return `<${open.join('><')}> left open`;
  return roots === 1 ? undefined : `${roots} root elements`;
}

const unescapeXml = (s: string) =>
  s.replace(
    /&(lt|gt|quot|apos|amp);/g,
    (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e] as string,
  );
const textOf = (xml: string, tag: string) =>
  unescapeXml(new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1] ?? '');

/** The domain XML reads back as the spec: its names, sizes, command line and MACs. */
export function checkXml(xml: string, spec: InstanceSpec, host: string, where: string) {
  assert.equal(xmlProblem(xml), undefined, `well-formed domain XML: ${where}\n${xml}`);
  const meta = parseKumoMetadata(xml);
  assert.deepEqual(
    meta,
    {
      uuid: spec.id,
      host,
      vcpus: spec.flavor.vcpus,
      memoryMiB: spec.flavor.ram,
      diskGiB: spec.flavor.disk,
    },
    where,
  );
  assert.equal(textOf(xml, 'kumo:name'), spec.display_name, where);
  const flavorName = /<kumo:flavor name='([^']*)'>/.exec(xml)?.[1] ?? '';
  assert.equal(unescapeXml(flavorName), spec.flavor.name, where);
  const kernel = spec.kernel !== null || spec.image.disk_format === 'aki';
  if (kernel && spec.cmdline !== null) assert.equal(textOf(xml, 'cmdline'), spec.cmdline, where);
  const macs = [...xml.matchAll(/<mac address='([^']*)'\/>/g)].map((m) => m[1]);
  assert.deepEqual(
    macs,
    spec.ports.map((p) => p.mac_address.toLowerCase()),
    `every port's MAC, in order: ${where}`,
  );
}

/* ------------------------------------------------------------ OVS's state */

/** br-int with a VM port (tap, iface-id) for each device, as libvirt or DHCP plug them. */
export function hostWith(devices: readonly DeviceDetails[], intBridge: string): OvsState {
  const ports = new Map<string, OvsPort>();
  devices.forEach((d, i) => {
    const tap = portDevice('tap', d.device);
    ports.set(tap, {
      uuid: randomUUID(),
      name: tap,
      bridge: intBridge,
      tag: null,
      otherConfig: {},
      interfaces: [
        {
          uuid: randomUUID(),
          name: tap,
          type: '',
          ofport: i + 1,
          options: {},
          externalIds: { 'iface-id': d.device, 'attached-mac': d.mac_address },
        },
      ],
    });
  });
  const bridge = {
    uuid: randomUUID(),
    name: intBridge,
    failMode: null,
    datapathType: '',
    ports: [...ports.values()].map((p) => p.uuid),
  };
  return {
    rootUuid: randomUUID(),
    curCfg: 1,
    nextCfg: 1,
    bridges: new Map([[bridge.name, bridge]]),
    ports,
  };
}
