/**
 * Has the host booted since the compute agent last ran? The kernel's boot id
 * (`/proc/sys/kernel/random/boot_id`, new at every boot) against the one the agent
 * recorded in `<state_path>/compute/boot_id`. Only after a boot does the agent start
 * again the active guests that are off (Nova's resume_guests_state_on_host_boot): a guest
 * that shut itself down while only the agent was down stays off.
 *
 * Invariants: the record is written (whole, by rename) only when the caller says every
 * guest the boot concerned has been dealt with, so an agent that dies before that deals
 * with the rest on its next start; no record (the agent's first start here) or an
 * unreadable one counts as a boot.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';

const BOOT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const KERNEL_BOOT_ID = '/proc/sys/kernel/random/boot_id';

export interface HostBoot {
  /** This boot's id. */
  current: string;
  /** The host booted since the record was written (or there is none). */
  rebooted: boolean;
  /** Records this boot as dealt with; later calls do nothing. */
  record(): Promise<void>;
}

async function readId(path: string): Promise<string | null> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  const id = text?.trim() ?? '';
  return BOOT_ID.test(id) ? id : null;
}

export async function hostBoot(stateDir: string, kernelBootId = KERNEL_BOOT_ID): Promise<HostBoot> {
  const current = await readId(kernelBootId);
  if (current === null) throw new Error(`${kernelBootId} holds no boot id`);
  const path = `${stateDir}/boot_id`;
  const recorded = await readId(path);
  let done = recorded === current;
  return {
    current,
    rebooted: !done,
    async record() {
      if (done) return;
      await mkdir(stateDir, { recursive: true, mode: 0o755 });
      await writeFile(`${path}.tmp`, `${current}\n`, { mode: 0o644 });
      await rename(`${path}.tmp`, path);
      done = true;
    },
  };
}
