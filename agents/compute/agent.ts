/**
 * kumo-compute-agent hooks. Domains come with issue #5; until then the agent reports the
 * host's real CPUs, memory and instance disk (measured for every report) with nothing used.
 */
import type { AgentHooks } from '../../core/agent.ts';
import { hostResources } from '../../host/system/resources.ts';
import { type HookDeps, nothingHosted } from '../run.ts';

export async function computeHooks({ config }: HookDeps): Promise<AgentHooks> {
  const instancesPath = config.compute.instances_path ?? `${config.DEFAULT.state_path}/instances`;
  return {
    configurations: async () => {
      const r = await hostResources(instancesPath);
      return {
        hypervisor_type: 'QEMU',
        virt_type: config.compute.virt_type,
        instances_path: instancesPath,
        cpu_model: r.cpuModel,
        vcpus: r.vcpus,
        memory_mb: r.memoryMb,
        local_gb: r.localGb,
        free_disk_gb: r.freeDiskGb,
        vcpus_used: 0,
        memory_mb_used: 0,
        local_gb_used: 0,
        running_vms: 0,
        cpu_allocation_ratio: config.compute.cpu_allocation_ratio,
        ram_allocation_ratio: config.compute.ram_allocation_ratio,
      };
    },
    resync: nothingHosted,
  };
}
