/**
 * What the compute agent tells the API about its host besides instances: its settings
 * from the config, libvirt's version as text, and what this host's own domains use.
 *
 * Invariant: a domain's usage is read from the Kumo metadata of this host's own domains,
 * running or not (a stopped guest keeps its claim).
 */
import type { KumoConfig } from '../../core/config.ts';
import type { ComputeSettings } from './desired.ts';
import type { KumoMetadata } from './observe.ts';

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
