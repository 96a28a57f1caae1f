/**
 * The volume agent's start checks (agents/volume/settings.ts checkSettings, volumeHooks):
 * a volumes_dir tgt could not take as a backing store's directory (a space, a comma,
 * `..`) stops the agent before anything is made, naming `[volume] volumes_dir`; a good
 * one is made 0700; the LVM backend has no volumes_dir to check.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { volumeHooks } from '../../agents/volume/agent.ts';
import { checkSettings, type VolumeSettings } from '../../agents/volume/settings.ts';
import type { Broker } from '../../core/amqp.ts';
import { compileConfig } from '../../core/config.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { tempDir } from '../helpers/env.ts';

const tmp = tempDir('kumo-vsettings-');
after(() => tmp.cleanup());

const settings = (volumesDir: string, driver: 'file' | 'lvm' = 'file'): VolumeSettings => ({
  host: 'storage1',
  driver,
  volumesDir,
  vg: 'kumo-volumes',
  lvmType: 'default',
  activation: true,
  volumeClear: 'zero',
  portal: '127.0.0.1:3260',
  tgtControlPort: 0,
});

const namesKey = (dir: string) => (e: Error) =>
  e.message.startsWith(`[volume] volumes_dir ${JSON.stringify(dir)} cannot hold volumes tgt`) &&
  /absolute path of \[A-Za-z0-9\._\+@\/-\]/.test(e.message);

describe('volumes_dir at start', () => {
  test('a space, a comma or ".." is refused naming the key, and nothing is made', async () => {
    for (const name of ['with space', 'with,comma', 'a=b']) {
      const dir = join(tmp.path, name);
      await assert.rejects(checkSettings(settings(dir)), namesKey(dir));
      assert.equal(existsSync(dir), false, dir);
    }
    const up = `${tmp.path}/x/../y`;
    await assert.rejects(checkSettings(settings(up)), namesKey(up));
  });
  test('a good directory is made 0700; LVM has nothing to check', async () => {
    const dir = join(tmp.path, 'good', 'volumes');
    await checkSettings(settings(dir));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    await checkSettings(settings(join(tmp.path, 'not used'), 'lvm'));
  });
  test('the agent refuses to start with such a volumes_dir (the config compiler accepts it)', async () => {
    const dir = join(tmp.path, 'my volumes');
    const config = compileConfig(
      [
        '[DEFAULT]',
        'host = storage1',
        '[volume]',
        'volume_driver = file',
        `volumes_dir = ${dir}`,
      ].join('\n'),
    );
    const broker = {
      call: async () => assert.fail('no call before the checks'),
      cast: async () => {},
    } as unknown as Broker;
    await assert.rejects(
      volumeHooks({ config, runner: createCommandRunner(), log: silentLogger(), broker }),
      namesKey(dir),
    );
  });
});
