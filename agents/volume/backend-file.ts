/**
 * The file backend: each volume and snapshot a sparse raw image `<volumes_dir>/<name>`
 * (host/fs/volume-file.ts), a snapshot or a volume made from a source being a sparse (or
 * reflink) copy, grown to its size after.
 *
 * Invariants: only `volume-<uuid>` / `snapshot-<uuid>` images are listed or touched;
 * free capacity is the filesystem's free space minus what the images may still allocate
 * (their size minus their blocks), so thick semantics hold: the scheduler never places
 * more than the disk can take once every guest has written its whole volume.
 */
import { stat } from 'node:fs/promises';
import type { CommandRunner } from '../../core/exec.ts';
import {
  copyVolumeFile,
  createVolumeFile,
  extendVolumeFile,
  listVolumeFiles,
  removeVolumeFile,
  volumeFilePath,
  volumesCapacity,
} from '../../host/fs/volume-file.ts';
import { zeroVolumeFile } from '../../host/fs/volume-zero.ts';
import type { DataBackend } from './backend.ts';
import type { VolumeSettings } from './settings.ts';

const GIB = 1024 ** 3;

export function fileBackend(s: VolumeSettings, runner: CommandRunner): DataBackend {
  const dir = s.volumesDir;
  const path = (name: string) => volumeFilePath(dir, name);
  return {
    list: async () => (await listVolumeFiles(dir)).map((f) => f.name),
    sizeOf: (name) =>
      stat(path(name)).then(
        (st) => st.size,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return null;
          throw e;
        },
      ),
    create: (name, sizeGb) => createVolumeFile(path(name), sizeGb),
    async copy(name, source, sizeGb) {
      await copyVolumeFile(runner, path(source.name), path(name));
      await extendVolumeFile(path(name), sizeGb);
    },
    snapshot: (name, origin) => copyVolumeFile(runner, path(origin), path(name)),
    async extend(name, sizeGb) {
      await extendVolumeFile(path(name), sizeGb);
    },
    async zero(name) {
      await zeroVolumeFile(runner, path(name));
    },
    async remove(name) {
      await removeVolumeFile(path(name));
    },
    async capacity() {
      const { totalGb, freeGb } = await volumesCapacity(dir);
      const files = await listVolumeFiles(dir);
      const promised = files.reduce((n, f) => n + Math.max(0, f.sizeBytes - f.allocatedBytes), 0);
      const free = Math.max(0, Math.floor((freeGb - promised / GIB) * 100) / 100);
      return { totalGb, freeGb: free, facts: {} };
    },
  };
}
