/**
 * host/version.ts, host/lvm/vgs.ts and host/system/resources.ts against the real host
 * tools (dnsmasq-base, haproxy, openvswitch-switch, iptables, lvm2 must be installed).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import { volumeGroup } from '../../host/lvm/vgs.ts';
import { hostResources } from '../../host/system/resources.ts';
import { toolVersion } from '../../host/version.ts';

const runner = createCommandRunner();
const DOTTED = /^\d+\.\d+(\.\d+)?$/;

/** Runs `argv` directly so a missing package fails with the fix, not a confusing null. */
async function requireTool(argv: string[], pkg: string): Promise<string> {
  try {
    const r = await runner.run({ argv, timeoutMs: 5000 });
    return `${r.stdout}\n${r.stderr}`;
  } catch (e) {
    assert.fail(
      `${argv[0]} is needed by this test: apt-get install -y ${pkg} (${(e as Error).message})`,
    );
  }
}

describe('toolVersion', () => {
  const tools: [string[], string][] = [
    [['dnsmasq', '--version'], 'dnsmasq-base'],
    [['haproxy', '-v'], 'haproxy'],
    [['ovs-vswitchd', '--version'], 'openvswitch-switch'],
    [['iptables', '--version'], 'iptables'],
  ];
  for (const [argv, pkg] of tools) {
    test(`${argv.join(' ')} gives a dotted version`, async () => {
      const raw = await requireTool(argv, pkg);
      const v = await toolVersion(runner, argv);
      assert.ok(v !== null, `no version found in: ${raw}`);
      assert.match(v, DOTTED);
      assert.ok(raw.includes(v), `${v} appears in the tool's own output`);
    });
  }

  test('a missing binary gives null', async () => {
    assert.equal(await toolVersion(runner, ['kumo-no-such-tool', '--version']), null);
  });

  test('a tool that fails for another reason is an error, not null', async () => {
    await assert.rejects(toolVersion(runner, ['sh', '-c', 'echo 1.2.3 >&2; exit 2']), CommandError);
  });
});

describe('volumeGroup', () => {
  test('a volume group that does not exist is null', async () => {
    await requireTool(['vgs', '--version'], 'lvm2');
    const name = `kumo-absent-${randomBytes(4).toString('hex')}`;
    assert.equal(await volumeGroup(runner, name), null);
  });
});

describe('hostResources', () => {
  test('reports the real host', async () => {
    const r = await hostResources('/tmp');
    assert.ok(Number.isInteger(r.vcpus) && r.vcpus >= 1, `vcpus ${r.vcpus}`);
    assert.equal(r.vcpus, availableParallelism());
    assert.ok(Number.isInteger(r.memoryMb) && r.memoryMb > 0, `memoryMb ${r.memoryMb}`);
    assert.ok(Number.isInteger(r.localGb) && r.localGb > 0, `localGb ${r.localGb}`);
    assert.ok(r.freeDiskGb >= 0 && r.freeDiskGb <= r.localGb, `freeDiskGb ${r.freeDiskGb}`);
    assert.ok(r.cpuModel.length > 0);
  });

  test('works on a path that does not exist yet (uses the nearest parent)', async () => {
    const missing = `/tmp/kumo-absent-${randomBytes(4).toString('hex')}/instances/deeper`;
    const r = await hostResources(missing);
    const parent = await hostResources('/tmp');
    assert.equal(r.localGb, parent.localGb);
    assert.ok(r.localGb > 0);
  });
});
