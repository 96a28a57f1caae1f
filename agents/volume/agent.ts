/**
 * kumo-volume-agent hooks. Volumes, snapshots and iSCSI exports come with the volume
 * issue; until then the agent reports its volume group's real capacity (measured with
 * `vgs` for every report) or that the group does not exist.
 */
import type { AgentHooks } from '../../core/agent.ts';
import { volumeGroup } from '../../host/lvm/vgs.ts';
import { toolVersion } from '../../host/version.ts';
import { type HookDeps, nothingHosted } from '../run.ts';

export async function volumeHooks({ config, runner }: HookDeps): Promise<AgentHooks> {
  const tgtVersion = await toolVersion(runner, ['tgtadm', '--version']);
  const name = config.volume.volume_group;
  return {
    configurations: async () => {
      const vg = await volumeGroup(runner, name);
      return {
        volume_backend_name: 'lvm',
        volume_group: name,
        volume_group_present: vg !== null,
        total_capacity_gb: vg?.sizeGb ?? 0,
        free_capacity_gb: vg?.freeGb ?? 0,
        target_helper: config.volume.target_helper,
        tgt_version: tgtVersion,
        volumes: 0,
      };
    },
    resync: nothingHosted,
  };
}
