/**
 * Instance metadata end to end with real guests (test/helpers/metadata-lab.ts): guest A on
 * `routed` (its metadata through the qrouter namespace's proxy) with a key pair, user data
 * and a config drive; guest B on `isolated` (through the qdhcp namespace's proxy) with the
 * same fixed IP, 10.0.0.5, its own key pair, and user data that makes it forge A's instance
 * id, address and network in the headers of one request. Each guest prints what it fetched on its console
 * (test/helpers/metadata-guest.ts); every listing must equal Nova's, every value be the
 * guest's own, A's config drive carry the same data. kumo-api's listener refuses unsigned
 * and badly signed requests with 403 and no data; oversized user data is a 400 and creates
 * nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { META_HEADERS, signInstanceId } from '../../contracts/metadata.ts';
import type { Port } from '../../contracts/network.ts';
import {
  consoleOutput,
  type GuestImages,
  type ServerView,
  uploadGuest,
  waitStatus,
} from '../helpers/compute.ts';
import { waitFor } from '../helpers/env.ts';
import { buildTestGuest } from '../helpers/guest.ts';
import {
  ec2InstanceId,
  metaDataListing,
  sshPublicKey,
  VERSIONS,
} from '../helpers/metadata-expect.ts';
import {
  FORGED_PATH,
  forgingUserData,
  type MetaItem,
  type MetaSource,
  metadataDone,
  parseMetadataConsole,
} from '../helpers/metadata-guest.ts';
import { buildMetadataLab, type MetadataLab } from '../helpers/metadata-lab.ts';

const IP = '10.0.0.5';
const MD = '/2009-04-04/meta-data';
const KEY_A = 'key-a';
const KEY_B = 'key-b';
/** A asks as someone else too: an unknown instance and address, B's network, no router. */
const USER_DATA_A = `#!/bin/sh\necho "guest A was here"\n${forgingUserData({
  instanceId: '00000000-0000-4000-8000-000000000000',
  forwardedFor: '10.0.0.77',
  networkId: '00000000-0000-4000-8000-000000000001',
  routerId: '00000000-0000-4000-8000-000000000002',
})}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const tenantOf = (s: ServerView) => (s as unknown as { tenant_id: string }).tenant_id;

type Seen = Map<MetaSource, Map<string, MetaItem>>;

describe('instance metadata with real guests', { timeout: 420_000 }, () => {
  let m: MetadataLab;
  let images: { a: GuestImages; b: GuestImages };
  const keyA = sshPublicKey('kumo-metadata-lab-a');
  const keyB = sshPublicKey('kumo-metadata-lab-b');
  let a: ServerView;
  let b: ServerView;
  let userDataB: string;

  const boot = async (server: Record<string, unknown>) => {
    const res = await m.c.http('POST', '/servers', { server: { flavorRef: '1', ...server } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return (res.body as { server: { id: string } }).server.id;
  };
  const fetched = async (id: string, sources: ('http' | 'configdrive')[]): Promise<Seen> => {
    let text = '';
    const done = await waitFor(
      `server ${id} printed its metadata`,
      async () => {
        text = await consoleOutput(m.c, id);
        return sources.every((s) => metadataDone(text, s));
      },
      150_000,
      1000,
    ).catch((e: Error) => new Error(`${e.message}; its console:\n${text.slice(-3000)}`));
    if (done instanceof Error) throw done;
    return parseMetadataConsole(text);
  };
  /** Each guest's console, parsed once when first needed (tests of one guest wait alone). */
  const seen = new Map<string, Promise<Seen>>();
  const seenOf = (server: ServerView, sources: ('http' | 'configdrive')[]) => {
    const key = `${server.id} ${sources.join(',')}`;
    if (!seen.has(key)) seen.set(key, fetched(server.id, sources));
    return seen.get(key) as Promise<Seen>;
  };
  const seenA = () => seenOf(a, ['configdrive', 'http']);
  const seenB = () => seenOf(b, ['http']);
  const item = (seen: Seen, source: MetaSource, path: string): string => {
    const got = seen.get(source)?.get(path);
    assert.ok(got?.ok, `${source} ${path}: ${JSON.stringify(got)}`);
    return got.body;
  };
  const lines = (text: string) => text.split('\n');
  const ec2Of = (server: ServerView) => ec2InstanceId(server['OS-EXT-SRV-ATTR:instance_name']);
  const assertMetaData = (meta: Record<string, unknown>, server: ServerView, name: string) => {
    assert.equal(meta.uuid, server.id);
    assert.equal(meta.name, name);
    assert.equal(meta.availability_zone, 'nova');
    assert.equal(meta.launch_index, 0);
    assert.equal(meta.project_id, tenantOf(server));
    for (const k of ['hostname', 'devices']) assert.ok(k in meta, `meta_data.json has ${k}`);
  };

  before(async () => {
    const guest = await buildTestGuest();
    m = await buildMetadataLab();
    images = {
      a: await uploadGuest(m.c, guest, {
        name: 'guest-a',
        cmdline: `${guest.cmdline} kumo.metadata kumo.configdrive`,
      }),
      b: await uploadGuest(m.c, guest, {
        name: 'guest-b',
        cmdline: `${guest.cmdline} kumo.metadata`,
      }),
    };
    for (const [name, public_key] of [
      [KEY_A, keyA],
      [KEY_B, keyB],
    ]) {
      const key = await m.c.http('POST', '/os-keypairs', { keypair: { name, public_key } });
      assert.equal(key.status, 200, JSON.stringify(key.body));
    }
    const portA: Port = await m.port(m.routed, IP);
    const portB: Port = await m.port(m.isolated, IP);
    const idA = await boot({
      name: 'guest-a',
      imageRef: images.a.machine,
      networks: [{ port: portA.id }],
      key_name: KEY_A,
      user_data: b64(USER_DATA_A),
      config_drive: true,
    });
    // B, on the isolated network, claims A's instance, A's network and A's router: a
    // relay that trusted the router header would answer for 10.0.0.5 behind r1, i.e. A
    userDataB = forgingUserData({
      instanceId: idA,
      forwardedFor: IP,
      networkId: m.routed.network.id,
      routerId: m.routerId,
    });
    const idB = await boot({
      name: 'guest-b',
      imageRef: images.b.machine,
      networks: [{ port: portB.id }],
      key_name: KEY_B,
      user_data: b64(userDataB),
    });
    a = await waitStatus(m.c, idA, 'ACTIVE', 120_000);
    b = await waitStatus(m.c, idB, 'ACTIVE', 120_000);
  });
  after(async () => {
    await m?.destroy();
  });

  test('the routed guest sees the listings and its own data through the router', async () => {
    const seen = await seenA();
    const got = (path: string) => item(seen, 'http', path);
    assert.deepEqual(lines(got('/')), [...VERSIONS]);
    assert.deepEqual(lines(got(`${MD}/`)), metaDataListing({ hasKey: true }));
    assert.equal(got(`${MD}/instance-id`), ec2Of(a));
    assert.equal(got(`${MD}/local-ipv4`), IP);
    assert.equal(got(`${MD}/placement/availability-zone`), 'nova');
    assert.equal(got(`${MD}/public-keys/0/openssh-key`).trim(), keyA);
    assert.equal(got('/2009-04-04/user-data'), USER_DATA_A);
    const meta = JSON.parse(got('/openstack/latest/meta_data.json'));
    assertMetaData(meta, a, 'guest-a');
    assert.equal(String(meta.public_keys?.[KEY_A]).trim(), keyA);
    const { random_seed: _served, ...served } = meta;
    const { random_seed: _onDrive, ...onDrive } = JSON.parse(
      item(seen, 'configdrive', '/openstack/latest/meta_data.json'),
    );
    assert.deepEqual(
      onDrive,
      served,
      'the config drive and the service agree (but the random seed)',
    );
  });

  test('the isolated guest with the same address sees its own data through the DHCP namespace', async () => {
    const seen = await seenB();
    const got = (path: string) => item(seen, 'http', path);
    assert.deepEqual(lines(got('/')), [...VERSIONS]);
    assert.deepEqual(lines(got(`${MD}/`)), metaDataListing({ hasKey: true }));
    assert.equal(got(`${MD}/instance-id`), ec2Of(b));
    assert.notEqual(ec2Of(a), ec2Of(b), 'A and B differ');
    assert.equal(got(`${MD}/local-ipv4`), IP);
    assert.equal(got(`${MD}/placement/availability-zone`), 'nova');
    assert.equal(got(`${MD}/public-keys/0/openssh-key`).trim(), keyB);
    assert.equal(got('/2009-04-04/user-data'), userDataB);
    const meta = JSON.parse(got('/openstack/latest/meta_data.json'));
    assertMetaData(meta, b, 'guest-b');
    assert.deepEqual(Object.keys(meta.public_keys ?? {}), [KEY_B]);
  });

  test('forged X-Instance-ID / X-Forwarded-For / X-Kumo-Network-ID / X-Kumo-Router-ID get a guest only its own data', async () => {
    assert.equal(item(await seenB(), 'forged', FORGED_PATH), ec2Of(b));
    assert.equal(item(await seenA(), 'forged', FORGED_PATH), ec2Of(a));
  });

  test("the routed guest's config drive shows the same data", async () => {
    const seen = await seenOf(a, ['configdrive']);
    const cd = (path: string) => item(seen, 'configdrive', path);
    const meta = JSON.parse(cd('/openstack/latest/meta_data.json'));
    assertMetaData(meta, a, 'guest-a');
    assert.equal(String(meta.public_keys?.[KEY_A]).trim(), keyA);
    assert.equal(cd('/openstack/latest/user_data'), USER_DATA_A);
    const ec2 = JSON.parse(cd('/ec2/latest/meta-data.json'));
    assert.equal(ec2['instance-id'], ec2Of(a));
    assert.equal(ec2['local-ipv4'], IP);
    assert.equal(ec2.placement?.['availability-zone'], 'nova');
    assert.equal(String(ec2['public-keys']?.['0']?.['openssh-key']).trim(), keyA);
    assert.equal(cd('/ec2/latest/user-data'), USER_DATA_A);
  });

  test("kumo-api's metadata listener refuses unsigned and badly signed requests with 403", async () => {
    const url = `http://127.0.0.1:${m.metadataPort}${MD}/instance-id`;
    const ask = (headers: Record<string, string>) => fetch(url, { headers });
    const base = { [META_HEADERS.instanceId]: a.id, [META_HEADERS.tenantId]: tenantOf(a) };
    const refused = [
      {},
      base,
      { ...base, [META_HEADERS.signature]: signInstanceId('not-the-secret', a.id) },
      { ...base, [META_HEADERS.signature]: signInstanceId(m.secret, b.id) },
    ];
    for (const headers of refused) {
      const res = await ask(headers);
      const text = await res.text();
      assert.equal(res.status, 403, text);
      assert.ok(!text.includes(ec2Of(a)), 'nothing leaks');
    }
    const signed = await ask({ ...base, [META_HEADERS.signature]: signInstanceId(m.secret, a.id) });
    assert.equal(signed.status, 200);
    assert.equal(await signed.text(), ec2Of(a));
  });

  test('oversized user data is a 400 naming the field, and creates nothing', async () => {
    const snapshot = async () => ({
      servers: ((await m.c.http('GET', '/servers')).body as { servers: { id: string }[] }).servers
        .map((x) => x.id)
        .sort(),
      ports: ((await m.c.http('GET', '/v2.0/ports')).body as { ports: Port[] }).ports
        .map((p) => `${p.id} ${p.device_id}`)
        .sort(),
    });
    const before = await snapshot();
    const res = await m.c.http('POST', '/servers', {
      server: {
        name: 'too-much',
        flavorRef: '1',
        imageRef: images.a.machine,
        networks: [{ uuid: m.routed.network.id }],
        user_data: b64('x'.repeat(49_200)),
      },
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.ok(res.body && 'badRequest' in res.body, JSON.stringify(res.body));
    assert.match(JSON.stringify(res.body), /user_data/);
    assert.deepEqual(await snapshot(), before);
  });
});
