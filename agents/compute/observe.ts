/**
 * What the host has of an instance: its libvirt domain (state and reason, managed save
 * image, the Kumo metadata that says which host owns it), its files under
 * `<instances_path>/<uuid>/` and which host's they are, its OVS ports and (ethernet VIFs)
 * where its taps are. Read-only.
 *
 * Invariant: a domain is this agent's only if its XML carries our metadata namespace with
 * this host's name; everything else on the hypervisor (other deployments, other lab
 * hosts, hand-made domains) is observed as foreign and never changed. Likewise an
 * instance directory is this agent's only if its owner marker names this host
 * (instance-dir.ts).
 */
import { stat } from 'node:fs/promises';
import { UUID } from '../../contracts/schema.ts';
import {
  type Domain,
  DomainState,
  type LibvirtClient,
  LibvirtError,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import type { InstancePaths } from './desired.ts';
import { KUMO_INSTANCE_XMLNS } from './domain.ts';
import { isActive } from './domain-state.ts';
import { readOwner } from './instance-dir.ts';
import type { InstanceTarget } from './target.ts';
import { observeVifs, type VifDeps } from './vif.ts';
import type { ObservedVifs } from './vif-plan.ts';
import type { ObservedVolumes } from './volume-xml.ts';

export interface KumoMetadata {
  uuid: string;
  host: string | null;
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
}

export interface ObservedDomain {
  dom: Domain;
  /** virDomainState and its reason. */
  state: number;
  reason: number;
  managedSave: boolean;
  meta: KumoMetadata | null;
}

export interface ObservedFiles {
  dir: boolean;
  /** The host the directory's owner marker names (null: none, or no directory). */
  owner: string | null;
  /** This host's staging directory of the instance (a crash mid-build left it). */
  staging: boolean;
  disk: boolean;
  kernel: boolean;
  ramdisk: boolean;
  /** `disk.config`, the config drive image. */
  configDrive: boolean;
}

export interface ObservedInstance {
  domain: ObservedDomain | null;
  files: ObservedFiles;
  /** Its OVS ports (and, ethernet mode, its taps); null when not read (see observeInstance). */
  vifs: ObservedVifs | null;
  /** Its volume disks and this host's attachment secrets (volumes.ts); absent: not read. */
  volumes?: ObservedVolumes;
}

const ENTITIES: Record<string, string> = {
  '&lt;': '<',
  '&gt;': '>',
  '&quot;': '"',
  '&apos;': "'",
  '&amp;': '&',
};
const unescapeXml = (s: string) => s.replace(/&(lt|gt|quot|apos|amp);/g, (m) => ENTITIES[m] ?? m);
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Our `<kumo:instance>` metadata from a domain XML as libvirt returns it; null if absent. */
export function parseKumoMetadata(xml: string): KumoMetadata | null {
  const ns = escapeRe(KUMO_INSTANCE_XMLNS);
  const block = new RegExp(
    `<([A-Za-z_][\\w.-]*):instance\\s+xmlns:\\1=["']${ns}["']\\s*>([\\s\\S]*?)</\\1:instance>`,
  ).exec(xml);
  if (!block) return null;
  const [, prefix, body] = block as unknown as [string, string, string];
  const field = (name: string) => {
    const m = new RegExp(`<${prefix}:${name}>([^<]*)</${prefix}:${name}>`).exec(body);
    return m ? unescapeXml(m[1] as string).trim() : null;
  };
  const num = (name: string) => {
    const v = Number(field(name) ?? 0);
    return Number.isSafeInteger(v) && v >= 0 ? v : 0;
  };
  const id = field('uuid');
  if (id === null || !UUID.test(id)) return null;
  return {
    uuid: id,
    host: field('host'),
    vcpus: num('vcpus'),
    memoryMiB: num('memory'),
    diskGiB: num('disk'),
  };
}

const noDomain = (e: unknown) =>
  e instanceof LibvirtError && e.code === VirErrorNumber.VIR_ERR_NO_DOMAIN;

/** The domain of `id` with its state; null when libvirt has none (or it vanished meanwhile). */
export async function observeDomain(
  libvirt: LibvirtClient,
  id: string,
): Promise<ObservedDomain | null> {
  try {
    const dom = await libvirt.lookupByUuid(id);
    const { state, reason } = await libvirt.getState(dom);
    const managedSave =
      state === DomainState.SHUTOFF ? await libvirt.hasManagedSaveImage(dom) : false;
    const meta = parseKumoMetadata(await libvirt.getXmlDesc(dom));
    return { dom, state, reason, managedSave, meta };
  } catch (e) {
    if (noDomain(e)) return null;
    throw e;
  }
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export async function observeFiles(paths: InstancePaths): Promise<ObservedFiles> {
  return {
    dir: await exists(paths.dir),
    owner: await readOwner(paths.dir),
    staging: await exists(paths.staging),
    disk: await exists(paths.disk),
    kernel: await exists(paths.kernel),
    ramdisk: await exists(paths.ramdisk),
    configDrive: await exists(paths.configDrive),
  };
}

export interface ObserveDeps extends VifDeps {
  libvirt: LibvirtClient;
}

/**
 * Everything of one instance the plan needs. OVS is read only when the plan decides on
 * VIFs from it (a teardown, or the plugs of an active guest in ethernet mode), so an
 * instance that only reports its power state does not depend on OVSDB.
 */
export async function observeInstance(
  deps: ObserveDeps,
  t: InstanceTarget,
): Promise<ObservedInstance> {
  const domain = await observeDomain(deps.libvirt, t.id);
  const files = await observeFiles(t.paths);
  const netns = t.settings.vswitchdNetns;
  const readVifs =
    t.intent === 'absent' || (netns !== undefined && isActive(domain) && ours(domain, t));
  const vifs = readVifs
    ? await observeVifs(deps, {
        vmUuid: t.id,
        nics: t.nics,
        netns: t.intent === 'absent' ? undefined : netns,
      })
    : null;
  return { domain, files, vifs };
}

const ours = (d: ObservedDomain | null, t: InstanceTarget) => d?.meta?.host === t.settings.host;

/** Every domain on the hypervisor whose metadata names `host`, with that metadata. */
export async function listOwnDomains(
  libvirt: LibvirtClient,
  host: string,
  cache: Map<string, KumoMetadata | null>,
): Promise<{ dom: Domain; meta: KumoMetadata }[]> {
  const all = await libvirt.listAllDomains();
  const out: { dom: Domain; meta: KumoMetadata }[] = [];
  for (const dom of all) {
    let meta = cache.get(dom.uuid);
    if (meta === undefined) {
      meta = await libvirt.getXmlDesc(dom).then(parseKumoMetadata, (e: unknown) => {
        if (noDomain(e)) return null;
        throw e;
      });
      cache.set(dom.uuid, meta);
    }
    if (meta?.host === host) out.push({ dom, meta });
  }
  const seen = new Set(all.map((d) => d.uuid));
  for (const key of cache.keys()) if (!seen.has(key)) cache.delete(key);
  return out;
}
