/**
 * Debian's `openstack` CLI (6.0) attaching, detaching and extending volumes as a project
 * member does after `source openrc`: `server add volume`, `server remove volume`, `volume
 * set --size`, against kumo-api's Nova and Cinder routes (identity-auth-harness.ts runs
 * both listeners in-process, endpoints from the catalog).
 *
 * The agents are played as the report consumer applies them (api/volume-reports.ts
 * applyVolumeReport, the function the q-plugin report_status handler calls): the storage
 * host serves the ACL and the extend, the compute host plugs and unplugs. The server is a
 * row as POST /servers leaves a booted one (active on host c1, its compute agent alive and
 * reporting its iSCSI initiator); booting is other suites' concern.
 *
 * Invariant under test: the client's exit code and JSON output agree with the database.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { insertInstance } from '../../api/db/servers.ts';
import { applyVolumeReport } from '../../api/volume-reports.ts';
import type { AgentState } from '../../contracts/agents.ts';
import { silentLogger } from '../../core/log.ts';
import { seedUser } from '../helpers/identity.ts';
import { ok, seededCli } from '../helpers/os-clients.ts';
import { volumeHeartbeat, volumeState } from '../helpers/volume-seed.ts';
import { identityStack } from './identity-auth-harness.ts';

type Obj = Record<string, unknown>;
const IQN = 'iqn.1993-08.org.debian:01:c1';

const computeState = (host: string): AgentState => ({
  agent_type: 'Compute agent',
  binary: 'kumo-compute-agent',
  topic: 'compute_agent',
  host,
  start_flag: true,
  configurations: {
    vcpus: 4,
    memory_mb: 4096,
    local_gb: 40,
    iscsi_initiator: IQN,
  } as AgentState['configurations'],
});

describe('the openstack CLI attaching, detaching and extending volumes', {
  timeout: 300_000,
}, () => {
  const s = identityStack('sqlite');
  let demo = '';
  const server = randomUUID();
  before(async () => {
    demo = (await seedUser(s.db, { name: 'demo', password: 'demo-pw', project: 'demo' })).projectId;
    await insertInstance(
      s.db,
      1,
      {
        id: server,
        name: 'vm1',
        projectId: demo,
        userId: 'demo',
        flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
        imageMeta: {
          image: {
            id: randomUUID(),
            checksum: '0'.repeat(32),
            os_hash_algo: 'sha512',
            os_hash_value: '0'.repeat(128),
            size: 1,
            disk_format: 'raw',
          },
          kernel: null,
          ramdisk: null,
          cmdline: null,
        },
        metadata: {},
        keptPorts: [],
        host: 'c1',
        vmState: 'active',
        taskState: null,
        fault: null,
        accessIPv4: '',
        accessIPv6: '',
        adminPass: null,
        reservationId: 'r-vm100000',
        launchIndex: 0,
        securityGroups: ['default'],
      },
      s.clock.now(),
    );
  });
  const cli = () => seededCli(s.main);
  const json = <T = Obj>(...args: string[]) => cli().json<T>('demo', ...args);
  const run = (...args: string[]) => cli().run('demo', ...args);
  const alive = async () => {
    await volumeHeartbeat(s.db, computeState('c1'), s.clock.now());
    await volumeHeartbeat(s.db, volumeState('s1'), s.clock.now());
  };
  const deps = () => ({ db: s.db, broker: s.broker, log: silentLogger(), clock: s.clock });
  const storage = (id: string, revision: number) =>
    applyVolumeReport(deps(), { host: 's1', agent_type: 'Volume agent', statuses: [] }, [
      { resource: 'volume', id, status: 'ACTIVE', revision },
    ]);
  const compute = (id: string, revision: number) =>
    applyVolumeReport(deps(), { host: 'c1', agent_type: 'Compute agent', statuses: [] }, [
      { resource: 'attachment', id, status: 'ACTIVE', revision },
    ]);
  const row = async (id: string) => {
    const [r] = await s.db.query<{ status: string; size: number; revision_number: number }>(
      'SELECT status, size, revision_number FROM volumes WHERE id = ?',
      [id],
    );
    return r && [r.status, Number(r.size), Number(r.revision_number)];
  };
  const attachmentId = async (volumeId: string) =>
    String(
      (await s.db.query('SELECT id FROM volume_attachments WHERE volume_id = ?', [volumeId]))[0]
        ?.id,
    );

  test('server add volume, server remove volume, volume set --size', async () => {
    await alive();
    const made = await json('volume', 'create', '--size', '1', 'data');
    const id = String(made.id);
    await s.db.query("UPDATE volumes SET host = 's1', status = 'creating' WHERE id = ?", [id]);
    await storage(id, 1);
    assert.deepEqual(await row(id), ['available', 1, 1]);

    const added = await run('server', 'add', 'volume', 'vm1', 'data');
    ok(added, 'server add volume');
    assert.deepEqual(await row(id), ['attaching', 1, 2]);
    await storage(id, 2);
    await compute(await attachmentId(id), 1);
    const shown = await json('volume', 'show', 'data');
    assert.equal(shown.status, 'in-use');
    const listed = await json<Obj[]>('server', 'volume', 'list', 'vm1');
    assert.deepEqual(
      listed.map((a) => [a.Device, a['Volume ID']]),
      [['/dev/vdb', id]],
    );
    const refused = await cli().refused('demo', 'volume', 'set', '--size', '3', 'data');
    assert.match(refused, /must be available before size can be extended/);
    assert.deepEqual(await row(id), ['in-use', 1, 2], 'a refused extend changes nothing');

    ok(await run('server', 'remove', 'volume', 'vm1', 'data'), 'server remove volume');
    assert.deepEqual(await row(id), ['detaching', 1, 2]);
    await compute(await attachmentId(id), 2);
    assert.deepEqual(await row(id), ['detaching', 1, 3], 'the ACL goes next');
    await storage(id, 3);
    assert.equal((await json('volume', 'show', 'data')).status, 'available');

    ok(await run('volume', 'set', '--size', '3', 'data'), 'volume set --size');
    assert.deepEqual(await row(id), ['extending', 1, 4], 'the size waits for the host');
    await alive();
    await storage(id, 4);
    const grown = await json('volume', 'show', 'data');
    assert.deepEqual([grown.status, grown.size], ['available', 3]);
  });
});
