/**
 * host/tgt pure parts: `tgtadm --op show` output captured from tgt 1.0.85 parsed into
 * targets (LUNs with size and backing store, bound accounts, ACL, I_T nexus sessions with
 * their address) and account names; a line that belongs to no target is an error, not
 * "no targets"; freeTid picks the lowest unused tid; every tgtadm builder refuses a bad
 * argument with a TgtArgumentError naming the field before the runner sees any command.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TARGET_LUN, targetIqn } from '../../contracts/volume.ts';
import { CommandError } from '../../core/exec.ts';
import { newLunCommand, newTargetCommand, showTargetsCommand } from '../../host/tgt/argv.ts';
import {
  freeTid,
  parseAccounts,
  parseTargets,
  sameTgtSize,
  TgtParseError,
} from '../../host/tgt/show.ts';
import {
  bindAccount,
  bindInitiator,
  deleteAccount,
  deleteTarget,
  newAccount,
  newLun,
  newTarget,
  TgtArgumentError,
  tgtadmRefusal,
  unbindInitiator,
} from '../../host/tgt/tgtadm.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

/** Two targets: tid 1 with a file LUN, an account and two ACL entries; tid 3 bare. */
const TWO_TARGETS = `Target 1: iqn.2010-10.org.openstack:volume-aaa
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 67 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/tgtcap/v1.img
            Backing store flags: 
    Account information:
        abcdefghijklmnopqrst
    ACL information:
        iqn.2010-10.org.kumo:host1
        iqn.2010-10.org.kumo:host2
Target 3: iqn.2010-10.org.openstack:volume-ccc
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00030000
            SCSI SN: beaf30
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
    Account information:
    ACL information:
`;

/** Target 1 while two initiators hold a session each (qemu-io over libiscsi). */
const WITH_SESSIONS = `Target 1: iqn.2010-10.org.openstack:volume-aaa
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.2010-10.org.kumo:host1 alias: none
            Connection: 0
                IP Address: 127.0.0.1
        I_T nexus: 2
            Initiator: iqn.2010-10.org.kumo:host2 alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 67 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/tgtcap/v1.img
            Backing store flags: 
    Account information:
        abcdefghijklmnopqrst
    ACL information:
        iqn.2010-10.org.kumo:host1
        iqn.2010-10.org.kumo:host2
Target 3: iqn.2010-10.org.openstack:volume-ccc
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00030000
            SCSI SN: beaf30
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 3
            Type: disk
            SCSI ID: IET     00030003
            SCSI SN: beaf33
            Size: 1 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/tgtcap/v3.img
            Backing store flags: 
        LUN: 4
            Type: disk
            SCSI ID: IET     00030004
            SCSI SN: beaf34
            Size: 2 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/tgtcap/v4.img
            Backing store flags: 
        LUN: 5
            Type: disk
            SCSI ID: IET     00030005
            SCSI SN: beaf35
            Size: 1074 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/tgtcap/v5.img
            Backing store flags: 
    Account information:
    ACL information:
`;

const ACCOUNTS = `Account list:
    bbbbbbbbbbbbbbbbbbbb
    abcdefghijklmnopqrst
`;

const ID = '0b7e5c1e-5f43-4a5e-9d3e-2f1a7c3b9d10';
const IQN = targetIqn(ID);
const USER = 'abcdefghijklmnopqrst';
const SECRET = '0123456789abcdef';
const HOST1 = 'iqn.2010-10.org.kumo:host1';

describe('tgtadm show parsing', () => {
  test('targets: LUNs, accounts, ACL, no sessions', () => {
    const targets = parseTargets(TWO_TARGETS);
    assert.deepEqual(targets, [
      {
        tid: 1,
        iqn: 'iqn.2010-10.org.openstack:volume-aaa',
        luns: [
          { lun: 0, sizeBytes: 0, backingStore: null },
          { lun: 1, sizeBytes: 67_000_000, backingStore: '/tmp/tgtcap/v1.img' },
        ],
        accounts: [USER],
        acl: [HOST1, 'iqn.2010-10.org.kumo:host2'],
        sessions: [],
      },
      {
        tid: 3,
        iqn: 'iqn.2010-10.org.openstack:volume-ccc',
        luns: [{ lun: 0, sizeBytes: 0, backingStore: null }],
        accounts: [],
        acl: [],
        sessions: [],
      },
    ]);
    const lun = targets[0]?.luns[1];
    assert.ok(lun);
    assert.equal(sameTgtSize(lun, 64 * 1024 * 1024), true, '64 MiB shows as 67 MB');
    assert.equal(sameTgtSize(lun, 65 * 1024 * 1024), false);
  });

  test('sessions: one per I_T nexus, initiator and address', () => {
    const [t] = parseTargets(WITH_SESSIONS);
    assert.deepEqual(t?.sessions, [
      { initiator: HOST1, address: '127.0.0.1' },
      { initiator: 'iqn.2010-10.org.kumo:host2', address: '127.0.0.1' },
    ]);
    assert.deepEqual(t?.acl, [HOST1, 'iqn.2010-10.org.kumo:host2']);
  });

  test('empty output: no targets, no accounts; an outgoing account is not listed', () => {
    assert.deepEqual(parseTargets(''), []);
    assert.deepEqual(parseAccounts(''), []);
    assert.deepEqual(parseAccounts(ACCOUNTS), ['bbbbbbbbbbbbbbbbbbbb', USER]);
    const out = 'Target 2: x\n    Account information:\n        a\n        b (outgoing)\n';
    assert.deepEqual(parseTargets(out)[0]?.accounts, ['a']);
  });

  test('a line outside any target is an error naming it', () => {
    assert.throws(() => parseTargets('tgtadm: something new\n'), TgtParseError);
    assert.throws(() => parseTargets(`${TWO_TARGETS}Trailer: x\n`), /Trailer: x/);
    assert.throws(() => parseAccounts('Account list:\nbad line\n'), TgtParseError);
  });

  test('freeTid: lowest unused tid from 1', () => {
    assert.equal(freeTid([]), 1);
    assert.equal(freeTid(parseTargets(TWO_TARGETS)), 2);
    assert.equal(freeTid([{ tid: 2 }, { tid: 3 }]), 1);
    assert.equal(freeTid([{ tid: 1 }, { tid: 2 }]), 3);
  });
});

describe('tgtadm argv', () => {
  test('-C only for a non-zero control port; long options', () => {
    assert.deepEqual(showTargetsCommand(0).argv, [
      'tgtadm',
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'show',
    ]);
    assert.deepEqual(newTargetCommand(7, 4, IQN).argv, [
      'tgtadm',
      '-C',
      '7',
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'new',
      '--tid',
      '4',
      '--targetname',
      IQN,
    ]);
    assert.deepEqual(newLunCommand(7, 4, TARGET_LUN, '/dev/vg0/volume-x').argv.slice(-6), [
      '--tid',
      '4',
      '--lun',
      '1',
      '--backing-store',
      '/dev/vg0/volume-x',
    ]);
  });

  const bad: [string, string, (t: { runner: FakeRunner; controlPort: number }) => Promise<void>][] =
    [
      ['tid', 'tid 0', (t) => newTarget(t, 0, IQN)],
      ['tid', 'fractional tid', (t) => deleteTarget(t, 1.5, false)],
      ['targetname', 'foreign iqn', (t) => newTarget(t, 1, 'iqn.2010-10.org.openstack:volume-aaa')],
      ['targetname', 'iqn with a comma', (t) => newTarget(t, 1, `${IQN},x`)],
      ['lun', 'LUN 0 (the controller)', (t) => newLun(t, 1, 0, '/tmp/x')],
      ['backing_store', 'relative path', (t) => newLun(t, 1, 1, 'tmp/x')],
      ['backing_store', 'path with ..', (t) => newLun(t, 1, 1, '/tmp/../etc/shadow')],
      ['backing_store', 'path with a comma', (t) => newLun(t, 1, 1, '/tmp/a,b')],
      ['backing_store', 'path with a newline', (t) => newLun(t, 1, 1, '/tmp/a\nb')],
      ['user', 'short user', (t) => newAccount(t, 'abc', SECRET)],
      ['user', 'user with a space', (t) => bindAccount(t, 1, 'abcdefghij klmnopqrs')],
      ['password', 'short secret', (t) => newAccount(t, USER, 'short')],
      ['password', 'secret with a dash', (t) => newAccount(t, USER, '-123456789abcdef')],
      ['user', 'delete a bad user', (t) => deleteAccount(t, '--force')],
      ['initiator_name', 'initiator with a comma', (t) => bindInitiator(t, 1, `${HOST1},x`)],
      ['initiator_name', 'not an iqn', (t) => unbindInitiator(t, 1, 'ALL')],
      [
        'control_port',
        'negative control port',
        (t) => newTarget({ ...t, controlPort: -1 }, 1, IQN),
      ],
    ];
  for (const [field, what, call] of bad)
    test(`refused before running: ${what}`, async () => {
      const runner = new FakeRunner();
      await assert.rejects(call({ runner, controlPort: 9 }), (e: unknown) => {
        assert.ok(e instanceof TgtArgumentError, String(e));
        assert.equal(e.field, field);
        return true;
      });
      assert.deepEqual(runner.calls, [], 'no command ran');
    });

  test('tgtadmRefusal names tgtadm reasons', () => {
    const refused = (stderr: string) =>
      new CommandError(
        { argv: ['tgtadm'] },
        { exitCode: 22, signal: null, stderr, timedOut: false },
      );
    assert.equal(tgtadmRefusal(refused('tgtadm: this account already exists\n')), 'exists');
    assert.equal(tgtadmRefusal(refused("tgtadm: can't find the target\n")), 'not-found');
    assert.equal(tgtadmRefusal(refused('tgtadm: this target is still active\n')), 'active');
    const noDaemon =
      'tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected\n';
    assert.equal(tgtadmRefusal(refused(noDaemon)), 'no-daemon');
    assert.equal(tgtadmRefusal(new Error('x')), null);
  });
});
