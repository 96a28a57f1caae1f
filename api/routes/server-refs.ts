/**
 * The references of a Nova server create: flavorRef, imageRef (with its kernel and
 * ramdisk), and the requested networks, ports and fixed IPs.
 *
 * Invariants: every reference is resolved read-only and refused with Nova's status and a
 * message naming it; a flavor or image is refused here when the compute agent could not
 * build a domain of it (contracts/servers.ts DOMAIN_LIMITS, the boot rules of
 * agents/compute/desired.ts), so an accepted server never fails for what it asked for.
 * Networks and ports are the caller's project's (networks also shared ones; an admin's
 * any): another project's is answered exactly as a missing one.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { GLANCE_UUID } from '../../contracts/images.ts';
import type { InstanceImage } from '../../contracts/instances.ts';
import type { Network } from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import {
  DOMAIN_LIMITS,
  domainTextProblem,
  type NetworkRequest,
  refId,
} from '../../contracts/servers.ts';
import { getFlavor, listFlavors } from '../db/flavors.ts';
import type { ImageRecord } from '../db/images.ts';
import type { Db } from '../db/index.ts';
import { getNetwork, listNetworks } from '../db/networks.ts';
import { fixedIpHolder } from '../db/port-devices.ts';
import { getPort } from '../db/ports.ts';
import type { FlavorSnapshot, ImageMeta } from '../db/servers.ts';
import { listSubnets } from '../db/subnets.ts';
import { canonicalIp, contains, parseIp } from '../ipam.ts';
import { callerProjectId, owns } from '../policy.ts';
import type { Nic } from '../scheduler/compute.ts';
import { planOf } from '../subnet-rules.ts';
import { type ImageViewer, visibleImage } from './image-access.ts';

const bad = (message: string) => new ApiError('BadRequest', message);
const conflict = (message: string) => new ApiError('Conflict', message);

/** The id a ref names; a malformed %-escape is the field's 400, not a 500. */
function idOf(ref: string, field: 'flavorRef' | 'imageRef'): string {
  try {
    return refId(ref);
  } catch {
    throw bad(`Invalid ${field} provided: '${ref}' is not an id or a URL.`);
  }
}

/** Why a domain cannot have this flavor's size or name, or undefined when it can. */
function flavorProblem(f: FlavorSnapshot): string | undefined {
  for (const [field, value, range] of [
    ['vcpus', f.vcpus, DOMAIN_LIMITS.vcpus],
    ['ram', f.ram, DOMAIN_LIMITS.ramMb],
  ] as const) {
    if (value < range.min || value > range.max)
      return `its ${field} is ${value}; a server takes ${range.min}..${range.max}`;
  }
  const name = domainTextProblem(f.name);
  return name && `its name ${name}`;
}

/**
 * flavorRef: a flavor id (or URL), or else a flavor name, that the caller may see (a
 * private one only when offered to its project); one a domain can have.
 */
export async function resolveFlavor(
  db: Db,
  req: FastifyRequest,
  ref: string,
): Promise<FlavorSnapshot> {
  const id = idOf(ref, 'flavorRef');
  const project = req.caller.isAdmin ? undefined : callerProjectId(req);
  const seen = project === undefined ? {} : { isPublic: true, project };
  const f =
    (await getFlavor(db, id, project)) ?? (await listFlavors(db, seen)).find((x) => x.name === id);
  if (!f) throw bad(`Invalid flavorRef provided: flavor ${id} could not be found.`);
  const flavor = { id: f.id, name: f.name, vcpus: f.vcpus, ram: f.ram, disk: f.disk };
  const problem = flavorProblem(flavor);
  if (problem) throw bad(`Invalid flavorRef provided: flavor ${f.id}: ${problem}.`);
  return flavor;
}

/** `label` names the image in errors: "Image <id>", "Kernel image <id> (kernel_id …)". */
function snapshot(img: ImageRecord, label: string): InstanceImage {
  const { checksum, os_hash_value: hash, size, disk_format: format } = img;
  if (img.status !== 'active' || checksum === null || hash === null || size === null)
    throw bad(`${label} is not active.`);
  if (format === null) throw bad(`${label} has no disk_format.`);
  return {
    id: img.id,
    checksum,
    os_hash_algo: 'sha512',
    os_hash_value: hash,
    size,
    disk_format: format,
  };
}

/** A kernel or ramdisk id: Glance's pattern takes any case; Kumo's ids are lowercase. */
async function imageOf(
  db: Db,
  caller: ImageViewer,
  id: string,
  label: string,
): Promise<InstanceImage> {
  const img = GLANCE_UUID.test(id) ? await visibleImage(db, caller, id.toLowerCase()) : undefined;
  if (!img) throw bad(`${label} could not be found.`);
  return snapshot(img, label);
}

/** os_command_line: empty is absent; otherwise text a kernel command line can carry. */
function cmdlineOf(raw: string | undefined, imageId: string): string | null {
  if (raw === undefined || raw === '') return null;
  const problem =
    raw.length > DOMAIN_LIMITS.cmdline
      ? `must be at most ${DOMAIN_LIMITS.cmdline} characters`
      : domainTextProblem(raw);
  if (problem) throw bad(`Image ${imageId} has an invalid os_command_line: it ${problem}.`);
  return raw;
}

/** Nova's flavor checks against the image's minimums and size. */
function checkFits(flavor: FlavorSnapshot, img: ImageRecord, size: number) {
  if (flavor.ram < img.min_ram) throw bad("Flavor's memory is too small for requested image.");
  if (flavor.disk > 0 && (flavor.disk < img.min_disk || flavor.disk * 1024 ** 3 < size))
    throw bad(
      `Flavor's disk is too small for requested image. Flavor disk is ${flavor.disk * 1024 ** 3} bytes, image is ${size} bytes.`,
    );
}

/** The boot rules the agent applies: a ramdisk is not bootable, ami and ramdisk need a kernel. */
function checkBootable(id: string, format: InstanceImage['disk_format'], k: boolean, r: boolean) {
  if (format === 'ari') throw bad(`Image ${id} is a ramdisk (ari): it cannot be booted.`);
  if (format === 'aki') return;
  if (format === 'ami' && !k) throw bad(`Image ${id} is an ami image without a kernel_id.`);
  if (r && !k) throw bad(`Image ${id} has a ramdisk_id but no kernel_id.`);
}

/**
 * imageRef: an active, bootable image with data the caller may see (image-access.ts), its
 * kernel/ramdisk too; Nova's flavor checks.
 */
export async function resolveImage(
  db: Db,
  ref: string,
  flavor: FlavorSnapshot,
  caller: ImageViewer,
) {
  const id = idOf(ref, 'imageRef');
  if (!UUID.test(id)) throw bad(`Invalid imageRef provided: ${id} is not an image id.`);
  const img = await visibleImage(db, caller, id);
  if (!img) throw bad(`Image ${id} could not be found.`);
  const image = snapshot(img, `Image ${id}`);
  checkFits(flavor, img, image.size);
  const { kernel_id: k, ramdisk_id: r, os_command_line: cmdline } = img.properties;
  checkBootable(id, image.disk_format, k !== undefined, r !== undefined);
  const meta: ImageMeta = {
    image,
    kernel:
      k === undefined
        ? null
        : await imageOf(db, caller, k, `Kernel image ${k} (kernel_id of image ${id})`),
    ramdisk:
      r === undefined
        ? null
        : await imageOf(db, caller, r, `Ramdisk image ${r} (ramdisk_id of image ${id})`),
    cmdline: cmdlineOf(cmdline, id),
  };
  return meta;
}

async function checkFixedIp(db: Db, networkId: string, raw: string, seen: Set<string>) {
  const text = canonicalIp(raw);
  const ip = parseIp(raw);
  if (!text || !ip) throw bad(`Invalid fixed IP address (${raw})`);
  const subnets = await listSubnets(db, { columns: { network_id: [networkId] }, clauses: [] });
  if (!subnets.some((s) => contains(planOf(s).cidr, ip)))
    throw bad(`Fixed IP ${text} is not a valid ip address for network ${networkId}.`);
  const holder = await fixedIpHolder(db, networkId, text);
  if (holder !== undefined)
    throw bad(`Fixed IP address ${text} is already in use on instance ${holder}.`);
  if (seen.has(text)) throw bad(`Fixed IP address ${text} is requested more than once.`);
  seen.add(text);
  return text;
}

/**
 * Whether the caller may boot on `net`: its own project's, a shared one, or any for an
 * admin. An external network of another project is Nova's 403; any other is answered as
 * a missing one, so its existence never leaks.
 */
function checkNetworkAccess(req: FastifyRequest, net: Network) {
  if (net.shared || owns(req, net.project_id)) return;
  if (net['router:external'])
    throw new ApiError(
      'PolicyNotAuthorized',
      `It is not allowed to create an interface on external network ${net.id}`,
    );
  throw bad(`Network ${net.id} could not be found.`);
}

async function networkNic(db: Db, req: FastifyRequest, id: string): Promise<Nic> {
  const net = await getNetwork(db, id);
  if (!net) throw bad(`Network ${id} could not be found.`);
  checkNetworkAccess(req, net);
  if (net.subnets.length === 0)
    throw bad(`Network ${id} requires a subnet in order to boot instances on.`);
  return { kind: 'network', networkId: id };
}

/** networks: "auto" is the only non-external network the caller may use, if there is one. */
async function autoNic(db: Db, req: FastifyRequest): Promise<Nic> {
  const all = await listNetworks(db, { columns: { external: [false] }, clauses: [] });
  const nets = all.filter((n) => n.shared || owns(req, n.project_id));
  if (nets.length > 1)
    throw conflict('Multiple possible networks found, use a Network ID to be more specific.');
  if (!nets[0]) throw bad('Unable to automatically allocate a network: there is no network.');
  return networkNic(db, req, nets[0].id);
}

/** An unused port of the caller's project (another project's is answered as missing). */
async function portNic(db: Db, req: FastifyRequest, portId: string, nics: Nic[]): Promise<Nic> {
  const port = await getPort(db, portId);
  if (!port || !owns(req, port.project_id)) throw bad(`Port id ${portId} could not be found.`);
  if (port.device_id !== '' || nics.some((x) => x.kind === 'port' && x.portId === portId))
    throw conflict(`Port ${portId} is still in use.`);
  return { kind: 'port', portId: port.id };
}

/** networks: new ports on networks, existing unused ports, "auto" (the only one), "none". */
export async function resolveNics(
  db: Db,
  req: FastifyRequest,
  networks: NetworkRequest[] | 'auto' | 'none' | undefined,
): Promise<Nic[]> {
  if (networks === undefined || networks === 'none') return [];
  if (networks === 'auto') return [await autoNic(db, req)];
  const nics: Nic[] = [];
  const ips = new Set<string>();
  for (const n of networks) {
    if (n.port !== undefined) {
      nics.push(await portNic(db, req, n.port, nics));
      continue;
    }
    const nic = await networkNic(db, req, n.uuid as string);
    if (n.fixed_ip !== undefined && nic.kind === 'network')
      nic.fixedIp = await checkFixedIp(db, nic.networkId, n.fixed_ip, ips);
    nics.push(nic);
  }
  return nics;
}
