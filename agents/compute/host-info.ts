/**
 * What the compute agent tells the API about its host besides instances: its settings
 * from the config, libvirt's version as text, what this host's own domains use, and the
 * `configurations` of every report (resources, usage, ratios, iSCSI initiator name).
 *
 * Invariant: a domain's usage is read from the Kumo metadata of this host's own domains,
 * running or not (a stopped guest keeps its claim); when they cannot be read the last
 * usage measured is reported (never a report failed for it).
 */
import type { KumoConfig } from '../../core/config.ts';
import type { Logger } from '../../core/log.ts';
import type { LibvirtClient } from '../../host/libvirt/client.ts';
import { hostResources } from '../../host/system/resources.ts';
import { type ComputeSettings, initiatorOf } from './desired.ts';
import { type KumoMetadata, listOwnDomains } from './observe.ts';

export function computeSettings(config: KumoConfig): ComputeSettings {
  const instancesPath = config.compute.instances_path ?? `${config.DEFAULT.state_path}/instances`;
  return {
    host: config.DEFAULT.host,
    instancesPath,
    baseDir: `${instancesPath}/_base`,
    virtType: config.compute.virt_type,
    intBridge: config.ovs.integration_bridge,
    ...(config.ovs.vswitchd_netns ? { vswitchdNetns: config.ovs.vswitchd_netns } : {}),
    vifPluggingTimeoutMs: config.compute.vif_plugging_timeout * 1000,
    shutdownTimeoutMs: config.compute.shutdown_timeout * 1000,
    stateDir: `${config.DEFAULT.state_path}/compute`,
    forceConfigDrive: config.compute.force_config_drive,
    ...(config.compute.iscsi_initiator_name
      ? { iscsiInitiator: config.compute.iscsi_initiator_name }
      : {}),
  };
}

/** libvirt's version number (major * 1e6 + minor * 1e3 + release) as text. */
export const versionText = (v: number) =>
  `${Math.floor(v / 1e6)}.${Math.floor((v % 1e6) / 1e3)}.${v % 1e3}`;

export interface Usage {
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  running_vms: number;
}

export function usageOf(own: { dom: { id: number }; meta: KumoMetadata }[]): Usage {
  const sum = (f: (m: KumoMetadata) => number) => own.reduce((n, d) => n + f(d.meta), 0);
  return {
    vcpus_used: sum((m) => m.vcpus),
    memory_mb_used: sum((m) => m.memoryMiB),
    local_gb_used: sum((m) => m.diskGiB),
    running_vms: own.filter((d) => d.dom.id > 0).length,
  };
}

/** What `hostConfigurations` reads; `lastUsage` is kept for a failed measurement. */
export interface HostFacts {
  config: KumoConfig;
  settings: ComputeSettings;
  libvirt: LibvirtClient;
  log: Logger;
  versions: { libvirt: string; hypervisor: number };
  metaCache: Map<string, KumoMetadata | null>;
  lastUsage: Usage;
}

async function measureUsage(a: HostFacts): Promise<Usage> {
  try {
    a.lastUsage = usageOf(await listOwnDomains(a.libvirt, a.settings.host, a.metaCache));
  } catch (e) {
    a.log.warn({ err: (e as Error).message }, 'domain usage not measured; reporting the last');
  }
  return a.lastUsage;
}

/** The compute agent's `configurations`, measured for every report. */
export async function hostConfigurations(a: HostFacts) {
  const { config, versions } = a;
  const r = await hostResources(a.settings.instancesPath);
  return {
    hypervisor_type: 'QEMU',
    hypervisor_version: versions.hypervisor,
    libvirt_version: versions.libvirt,
    virt_type: a.settings.virtType,
    instances_path: a.settings.instancesPath,
    cpu_model: r.cpuModel,
    vcpus: r.vcpus,
    memory_mb: r.memoryMb,
    local_gb: r.localGb,
    free_disk_gb: r.freeDiskGb,
    ...(await measureUsage(a)),
    cpu_allocation_ratio: config.compute.cpu_allocation_ratio,
    ram_allocation_ratio: config.compute.ram_allocation_ratio,
    disk_allocation_ratio: config.compute.disk_allocation_ratio,
    reserved_host_memory_mb: config.compute.reserved_host_memory_mb,
    iscsi_initiator: initiatorOf(a.settings),
  };
}
