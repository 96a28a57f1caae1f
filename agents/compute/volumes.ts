/**
 * The compute agent's volume I/O: what the host has (the domain's iSCSI disks, this
 * host's attachment secrets) and the handlers of the volume steps (volume-plan.ts plans
 * them): CHAP secrets defined and valued over our libvirt client, disks hot-plugged and
 * unplugged, secrets removed; and the resync's removal of orphan secrets.
 *
 * Invariants:
 * - only secrets whose usage is `kumo-attachment-<uuid>` (iSCSI) are ever removed here;
 * - every handler looks the domain (and the secret) up again and checks what is there
 *   first, so a step whose work is done is a no-op;
 * - an attach or detach that fails is that attachment's failure (recorded for its ERROR
 *   status, its secret removed after a failed attach, so nothing is left defined); only
 *   libvirt's connection and timeout errors (transient) fail the reconcile;
 * - a detach is done when the guest released the disk (the live XML no longer has it),
 *   bounded by the step's timeout; only then is the secret removed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TransientError } from '../../contracts/errors.ts';
import type { Logger } from '../../core/log.ts';
import {
  DomainAffect,
  DomainXmlFlags,
  type LibvirtClient,
  LibvirtError,
  type Secret,
  SecretUsageType,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import { classify } from '../lib/errors.ts';
import { reasonOf } from '../lib/status.ts';
import { initiatorOf } from './desired.ts';
import { isActive } from './domain-state.ts';
import { type KumoMetadata, listOwnDomains, type ObservedDomain } from './observe.ts';
import type { ComputeStep } from './steps.ts';
import {
  findVolumeDisks,
  type ObservedVolumes,
  SECRET_USAGE_PREFIX,
  secretDescription,
} from './volume-xml.ts';

const POLL_MS = 200;
const UUID_TAIL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** This host's attachment secrets (usage `kumo-attachment-<uuid>` naming their own uuid). */
export async function attachmentSecrets(lv: LibvirtClient): Promise<Secret[]> {
  return (await lv.listAllSecrets()).filter(
    (s) =>
      s.usageType === SecretUsageType.ISCSI &&
      s.usageId.startsWith(SECRET_USAGE_PREFIX) &&
      UUID_TAIL.test(s.usageId.slice(SECRET_USAGE_PREFIX.length)),
  );
}

/** The domain's volume disks and the host's attachment secrets (read only when any matters). */
export async function observeVolumes(
  lv: LibvirtClient,
  domain: ObservedDomain | null,
  wanted: number,
): Promise<ObservedVolumes> {
  const disks = domain ? findVolumeDisks(await lv.getXmlDesc(domain.dom)) : [];
  if (wanted === 0 && disks.length === 0) return { disks, secrets: new Set() };
  const secrets = new Set((await attachmentSecrets(lv)).map((s) => s.uuid));
  return { disks, secrets };
}

const noSecret = (e: unknown) =>
  e instanceof LibvirtError && e.code === VirErrorNumber.VIR_ERR_NO_SECRET;

export async function defineSecret(lv: LibvirtClient, xml: string, value: string): Promise<void> {
  const s = await lv.secretDefineXml(xml);
  await lv.secretSetValue(s, Buffer.from(value, 'utf8'));
}

export async function removeSecret(lv: LibvirtClient, attachmentId: string): Promise<void> {
  try {
    await lv.secretUndefine(await lv.secretLookupByUuid(attachmentId));
  } catch (e) {
    if (!noSecret(e)) throw e;
  }
}

/** The domain's disks as the step needs them: live when active, else its config. */
async function disksNow(lv: LibvirtClient, uuid: string) {
  const dom = await lv.lookupByUuid(uuid);
  const { state } = await lv.getState(dom);
  return { dom, running: isActive({ state }), disks: findVolumeDisks(await lv.getXmlDesc(dom)) };
}

type Step<K extends ComputeStep['kind']> = Extract<ComputeStep, { kind: K }>;

async function attach(lv: LibvirtClient, step: Step<'volume-attach'>): Promise<void> {
  await defineSecret(lv, step.secret.xml, step.secret.value);
  const { dom, running, disks } = await disksNow(lv, step.uuid);
  if (disks.some((d) => d.volumeId === step.volumeId)) return;
  const flags = running ? DomainAffect.LIVE | DomainAffect.CONFIG : DomainAffect.CONFIG;
  await lv.attachDevice(dom, step.xml, flags);
}

async function detach(lv: LibvirtClient, step: Step<'volume-detach'>): Promise<void> {
  const gone = async () =>
    !(await disksNow(lv, step.uuid)).disks.some((d) => d.volumeId === step.volumeId);
  const { dom, running, disks } = await disksNow(lv, step.uuid).catch((e: unknown) => {
    if (e instanceof LibvirtError && e.code === VirErrorNumber.VIR_ERR_NO_DOMAIN)
      return { dom: null, running: false, disks: [] };
    throw e;
  });
  if (dom !== null && disks.some((d) => d.volumeId === step.volumeId)) {
    const flags = running ? DomainAffect.LIVE | DomainAffect.CONFIG : DomainAffect.CONFIG;
    await lv.detachDevice(dom, step.xml, flags);
    const deadline = Date.now() + step.timeoutMs;
    while (!(await gone())) {
      if (Date.now() >= deadline)
        throw new Error(
          `the guest did not release volume ${step.volumeId} within ${step.timeoutMs} ms`,
        );
      await sleep(POLL_MS);
    }
  }
  const secret = step.attachmentId ?? disks.find((d) => d.volumeId === step.volumeId)?.secretUuid;
  if (secret) await removeSecret(lv, secret);
}

/**
 * Runs an attach or detach; its failure is recorded in `failures` (by attachment) and,
 * for an attach, its secret removed. Transient (connection) errors propagate.
 */
export async function runVolumeStep(
  lv: LibvirtClient,
  step: Step<'volume-attach'> | Step<'volume-detach'>,
  failures: Map<string, string>,
): Promise<void> {
  try {
    if (step.kind === 'volume-attach') await attach(lv, step);
    else await detach(lv, step);
  } catch (e) {
    const err = classify(e);
    if (err instanceof TransientError) throw err;
    if (step.kind === 'volume-attach') await removeSecret(lv, step.attachmentId);
    if (step.attachmentId !== null) failures.set(step.attachmentId, reasonOf(err));
  }
}

/**
 * The resync's orphans: attachment secrets this host owns (their description names its
 * `initiator`) that no instance of this host lists (`known`) and no domain of this host
 * names (config or live). Returns the ids removed.
 */
export async function pruneSecrets(
  lv: LibvirtClient,
  initiator: string,
  ownDomainXml: () => Promise<string[]>,
  known: () => ReadonlySet<string>,
): Promise<string[]> {
  const secrets = await attachmentSecrets(lv);
  if (secrets.length === 0) return [];
  const named = new Set(
    (await ownDomainXml()).flatMap((x) => findVolumeDisks(x).flatMap((d) => d.secretUuid ?? [])),
  );
  const keep = known();
  const orphans: string[] = [];
  for (const s of secrets) {
    if (named.has(s.uuid) || keep.has(s.uuid)) continue;
    const xml = await lv.secretGetXmlDesc(s).catch(() => '');
    const mine = xml.includes(`<description>${secretDescription(s.uuid, initiator)}</description>`);
    if (mine) orphans.push(s.uuid);
  }
  for (const id of orphans) await removeSecret(lv, id);
  return orphans;
}

/** The resync's pruning of orphan secrets (`pruneSecrets`), logged; a failure only warned. */
export async function pruneOrphanSecrets(a: {
  libvirt: LibvirtClient;
  settings: { host: string; iscsiInitiator?: string };
  metaCache: Map<string, KumoMetadata | null>;
  /** The attachment ids each instance's last fetched spec lists. */
  volumeIds: ReadonlyMap<string, ReadonlySet<string>>;
  log: Logger;
}): Promise<void> {
  const known = () => new Set([...a.volumeIds.values()].flatMap((ids) => [...ids]));
  try {
    const xml = () => ownDomainXml(a.libvirt, a.settings.host, a.metaCache);
    const removed = await pruneSecrets(a.libvirt, initiatorOf(a.settings), xml, known);
    if (removed.length > 0) a.log.info({ removed }, 'orphan attachment secrets removed');
  } catch (e) {
    a.log.warn({ err: (e as Error).message }, 'attachment secrets not pruned');
  }
}

/** Every XML (config, and live when running) of this host's domains. */
export async function ownDomainXml(
  lv: LibvirtClient,
  host: string,
  cache: Map<string, KumoMetadata | null>,
): Promise<string[]> {
  const out: string[] = [];
  for (const { dom } of await listOwnDomains(lv, host, cache)) {
    out.push(await lv.getXmlDesc(dom, DomainXmlFlags.INACTIVE));
    if (dom.id > 0) out.push(await lv.getXmlDesc(dom));
  }
  return out;
}
