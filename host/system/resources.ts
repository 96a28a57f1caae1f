/**
 * What a hypervisor has: CPUs, memory and the disk under the instances path.
 *
 * Invariant: every figure is read from the running host at call time (no config value
 * stands in for a measurement); disk space comes from statfs of the instances path, or of
 * its nearest existing parent when the directory is not created yet.
 */
import { statfs } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';

export interface HostResources {
  vcpus: number;
  memoryMb: number;
  localGb: number;
  freeDiskGb: number;
  cpuModel: string;
}

async function statfsNearest(path: string) {
  for (let p = path; ; p = dirname(p)) {
    try {
      return await statfs(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || p === '/') throw e;
    }
  }
}

export async function hostResources(instancesPath: string): Promise<HostResources> {
  const fs = await statfsNearest(instancesPath);
  const gb = (blocks: number) => Math.floor((blocks * fs.bsize) / 2 ** 30);
  return {
    vcpus: availableParallelism(),
    memoryMb: Math.floor(totalmem() / 2 ** 20),
    localGb: gb(fs.blocks),
    freeDiskGb: gb(fs.bavail),
    cpuModel: cpus()[0]?.model ?? 'unknown',
  };
}
