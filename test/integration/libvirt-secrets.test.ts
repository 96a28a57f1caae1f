/**
 * host/libvirt secret procedures against the real libvirtd (qemu:///system, whose secret
 * driver keeps defined secrets): define a private, persistent iSCSI secret, set its value,
 * look it up by uuid, find it in the list of all secrets, read its XML (never its value),
 * redefine it (same uuid and usage), undefine it; the bytes set are the value libvirtd
 * keeps (read back with virsh from a non-private secret, refused for a private one); a lookup of an unknown uuid is
 * VIR_ERR_NO_SECRET, and a second secret with the same usage is refused.
 *
 * A missing libvirtd fails every test with the reason.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  createLibvirtClient,
  DEFAULT_LIBVIRT_SOCKET,
  type LibvirtClient,
  LibvirtError,
  SecretUsageType,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import { runCommand } from '../helpers/cluster.ts';

const secretXml = (uuid: string, target: string, priv = 'yes') =>
  `<secret ephemeral='no' private='${priv}'><uuid>${uuid}</uuid>` +
  `<usage type='iscsi'><target>${target}</target></usage></secret>`;

describe('libvirt secrets over our client (real libvirtd)', () => {
  let lv: LibvirtClient;
  const made = new Set<string>();

  before(async () => {
    if (!existsSync(DEFAULT_LIBVIRT_SOCKET))
      throw new Error(
        `libvirtd is not running (no ${DEFAULT_LIBVIRT_SOCKET}): start it with libvirtd -d`,
      );
    lv = await createLibvirtClient({ uri: 'qemu:///system', timeoutMs: 10_000 });
  });
  after(async () => {
    for (const uuid of made) await runCommand(['virsh', 'secret-undefine', uuid]);
    await lv?.close();
  });

  test('define, set value, look up, list, read XML, redefine, undefine', async () => {
    const uuid = randomUUID();
    const usage = `kumo-attachment-${uuid}`;
    made.add(uuid);
    const s = await lv.secretDefineXml(secretXml(uuid, usage));
    assert.deepEqual(s, { uuid, usageType: SecretUsageType.ISCSI, usageId: usage });
    await lv.secretSetValue(s, Buffer.from('0123456789abcdef'));
    // private: nobody reads the value back, not even root with virsh
    const refused = await runCommand(['virsh', 'secret-get-value', uuid]);
    assert.match(refused.stderr, /private/);
    assert.deepEqual(await lv.secretLookupByUuid(uuid), s);
    const all = await lv.listAllSecrets();
    assert.deepEqual(
      all.filter((x) => x.uuid === uuid),
      [s],
    );
    const xml = await lv.secretGetXmlDesc(s);
    assert.match(xml, /private='yes'|private="yes"/);
    assert.match(xml, new RegExp(`<target>${usage}</target>`));
    assert.doesNotMatch(xml, /0123456789abcdef/);
    assert.deepEqual(await lv.secretDefineXml(secretXml(uuid, usage)), s, 'redefined in place');
    await lv.secretUndefine(s);
    made.delete(uuid);
    await assert.rejects(
      lv.secretLookupByUuid(uuid),
      (e: unknown) => e instanceof LibvirtError && e.code === VirErrorNumber.VIR_ERR_NO_SECRET,
    );
    assert.equal((await lv.listAllSecrets()).filter((x) => x.uuid === uuid).length, 0);
  });

  test('the value set is the bytes given (a non-private secret, read back with virsh)', async () => {
    const uuid = randomUUID();
    made.add(uuid);
    const s = await lv.secretDefineXml(secretXml(uuid, `kumo-test-${uuid}`, 'no'));
    await lv.secretSetValue(s, Buffer.from('0123456789abcdef'));
    const got = await runCommand(['virsh', 'secret-get-value', uuid]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(Buffer.from(got.stdout.trim(), 'base64').toString(), '0123456789abcdef');
    await lv.secretUndefine(s);
    made.delete(uuid);
  });

  test('a second secret with the same usage is refused; an unknown uuid is NO_SECRET', async () => {
    const uuid = randomUUID();
    const usage = `kumo-attachment-${uuid}`;
    made.add(uuid);
    await lv.secretDefineXml(secretXml(uuid, usage));
    await assert.rejects(lv.secretDefineXml(secretXml(randomUUID(), usage)), LibvirtError);
    await assert.rejects(
      lv.secretLookupByUuid(randomUUID()),
      (e: unknown) => e instanceof LibvirtError && e.code === VirErrorNumber.VIR_ERR_NO_SECRET,
    );
    await lv.secretUndefine(await lv.secretLookupByUuid(uuid));
    made.delete(uuid);
  });
});
