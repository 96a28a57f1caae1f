/**
 * Nova's os-keypairs in kumo-api on both database engines (api-servers-harness: a real
 * database and broker; two callers, the admin and a member, are two users of one
 * project). Keys are real: ssh-keygen's RSA, ed25519 and ECDSA keys and an openssl
 * certificate, whose fingerprints the tools print and Kumo must equal.
 *
 * Shown: import and generate at 2.1 (200, no type) and 2.2+ (201, type), the generated
 * private key answered once and matching its public key (ssh-keygen -y), list/show/delete
 * shapes and codes per microversion, key pairs private to their user (another's is 404),
 * an admin naming a user from 2.10 and anyone else refused; every refusal (bad key, bad or
 * unsafe name, duplicate, fields beyond the microversion, quota) is Nova's code and
 * message and leaves the table as it was; the key_pairs quota admits exactly its limit
 * under concurrent creates, and the quota detail counts the caller's key pairs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { tempDir } from '../helpers/env.ts';
import { keypairRows, novaCall, novaError, sshKey, x509Cert } from './api-keypairs-helpers.ts';
import { type Body, MEMBER, serversHarness } from './api-servers-harness.ts';

const dir = tempDir();
after(() => dir.cleanup());
const rsa = sshKey(dir.path, 'rsa', 'rsa', 2048);
const ed = sshKey(dir.path, 'ed', 'ed25519');
const ecdsa = sshKey(dir.path, 'ec', 'ecdsa', 384);
const cert = x509Cert(dir.path, 'cert');

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`key pairs on ${engine}`, () => {
    const h = serversHarness(engine);
    const nova = novaCall(h);
    const create = (keypair: Body, v?: string, token?: string) =>
      nova('POST', '/v2.1/os-keypairs', { body: { keypair }, v, ...(token ? { token } : {}) });
    const kp = (a: { body: Body | null }) => (a.body as { keypair: Body }).keypair;

    beforeEach(async () => {
      await h.db.query('DELETE FROM keypairs');
      await h.db.query('DELETE FROM quotas');
    });

    test("import: Nova's fingerprints of real keys, 200 without type at 2.1, 201 with type from 2.2", async () => {
      const a = await create({ name: 'k-rsa', public_key: rsa.pub });
      assert.equal(a.status, 200, a.raw);
      assert.deepEqual(kp(a), {
        name: 'k-rsa',
        public_key: rsa.pub,
        fingerprint: rsa.fingerprint,
        user_id: 'admin',
      });
      for (const [name, key] of [
        ['k-ed', ed],
        ['k ecdsa', ecdsa],
      ] as const) {
        const b = await create({ name, public_key: key.pub }, '2.2');
        assert.equal(b.status, 201, b.raw);
        assert.deepEqual(kp(b), {
          name,
          public_key: key.pub,
          fingerprint: key.fingerprint,
          user_id: 'admin',
          type: 'ssh',
        });
      }
      const x = await create({ name: 'k-x509', type: 'x509', public_key: cert.pem }, '2.16');
      assert.equal(x.status, 201, x.raw);
      assert.equal(kp(x).fingerprint, cert.fingerprint);
      assert.equal(kp(x).type, 'x509');
      const rows = await keypairRows(h);
      assert.deepEqual(
        rows.map((r) => [Number(r.seq), r.name, r.user_id, r.type]),
        [
          [1, 'k-rsa', 'admin', 'ssh'],
          [2, 'k-ed', 'admin', 'ssh'],
          [3, 'k ecdsa', 'admin', 'ssh'],
          [4, 'k-x509', 'admin', 'x509'],
        ],
      );
    });

    test('generate: RSA 2048, the private key answered once and matching the public key', async () => {
      const a = await create({ name: 'gen' }, '2.2');
      assert.equal(a.status, 201, a.raw);
      const k = kp(a);
      assert.deepEqual(Object.keys(k).sort(), [
        'fingerprint',
        'name',
        'private_key',
        'public_key',
        'type',
        'user_id',
      ]);
      const pem = String(k.private_key);
      assert.match(pem, /^-----BEGIN RSA PRIVATE KEY-----\n/);
      assert.equal(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength, 2048);
      const file = join(dir.path, `gen-${engine}`);
      writeFileSync(file, pem, { mode: 0o600 });
      const derived = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
      const [type, blob, comment] = String(k.public_key).split(' ');
      assert.equal(`${type} ${blob}`, derived);
      assert.equal(comment, 'Generated-by-Kumo');
      writeFileSync(`${file}.pub`, `${k.public_key}\n`);
      const fp = execFileSync('ssh-keygen', ['-l', '-E', 'md5', '-f', `${file}.pub`], {
        encoding: 'utf8',
      });
      assert.equal(k.fingerprint, fp.split(' ')[1]?.replace(/^MD5:/, ''));
      const shown = kp(await nova('GET', '/v2.1/os-keypairs/gen', { v: '2.2' }));
      assert.equal(shown.private_key, undefined, 'the private key is answered once');
      assert.ok(!JSON.stringify(await keypairRows(h)).includes('PRIVATE'), 'never stored');
      const x509 = await create({ name: 'gen-x509', type: 'x509' }, '2.2');
      assert.match(novaError(x509, 400), /^Keypair data is invalid: /);
    });

    test('list, show and delete: shapes and codes per microversion', async () => {
      await create({ name: 'b', public_key: rsa.pub });
      await create({ name: 'a', public_key: ed.pub });
      const l21 = await nova('GET', '/v2.1/os-keypairs');
      assert.equal(l21.status, 200);
      assert.deepEqual(l21.body, {
        keypairs: [
          { keypair: { name: 'a', public_key: ed.pub, fingerprint: ed.fingerprint } },
          { keypair: { name: 'b', public_key: rsa.pub, fingerprint: rsa.fingerprint } },
        ],
      });
      const l22 = (await nova('GET', '/os-keypairs', { v: '2.2' })).body as {
        keypairs: { keypair: Body }[];
      };
      assert.deepEqual(
        l22.keypairs.map((k) => k.keypair.type),
        ['ssh', 'ssh'],
      );
      const [row] = (await keypairRows(h)).filter((r) => r.name === 'a');
      const s21 = kp(await nova('GET', '/v2.1/os-keypairs/a'));
      assert.deepEqual(s21, {
        name: 'a',
        public_key: ed.pub,
        fingerprint: ed.fingerprint,
        user_id: 'admin',
        created_at: `${h.clock.now().toISOString().slice(0, 19)}.000000`,
        updated_at: null,
        deleted_at: null,
        deleted: false,
        id: Number(row?.seq),
      });
      assert.equal(kp(await nova('GET', '/v2.1/os-keypairs/a', { v: '2.2' })).type, 'ssh');
      const d21 = await nova('DELETE', '/v2.1/os-keypairs/a');
      assert.equal(d21.status, 202);
      const d22 = await nova('DELETE', '/v2.1/os-keypairs/b', { v: '2.2' });
      assert.equal(d22.status, 204);
      assert.equal(d22.raw, '');
      assert.deepEqual(await keypairRows(h), []);
      assert.equal(
        novaError(await nova('GET', '/v2.1/os-keypairs/a'), 404),
        'Keypair a not found for user admin',
      );
      assert.equal(
        novaError(await nova('DELETE', '/v2.1/os-keypairs/a'), 404),
        'Keypair a not found for user admin',
      );
    });

    test("key pairs are their user's: another's is 404; from 2.10 an admin names the user", async () => {
      await create({ name: 'mine', public_key: rsa.pub }, '2.2', MEMBER);
      await create({ name: 'root', public_key: ed.pub }, '2.2');
      const member = (await nova('GET', '/os-keypairs', { token: MEMBER })).body as {
        keypairs: { keypair: Body }[];
      };
      assert.deepEqual(
        member.keypairs.map((k) => k.keypair.name),
        ['mine'],
      );
      const other = await nova('GET', '/os-keypairs/root', { token: MEMBER });
      assert.equal(novaError(other, 404), 'Keypair root not found for user member');
      const before = await keypairRows(h);
      assert.equal(
        novaError(await nova('DELETE', '/os-keypairs/root', { token: MEMBER }), 404),
        'Keypair root not found for user member',
      );
      for (const [method, url] of [
        ['GET', '/os-keypairs?user_id=admin'],
        ['GET', '/os-keypairs/root?user_id=admin'],
        ['DELETE', '/os-keypairs/root?user_id=admin'],
      ] as const) {
        const r = await nova(method, url, { token: MEMBER, v: '2.10' });
        assert.match(
          novaError(r, 403),
          /^Policy doesn't allow os_compute_api:os-keypairs:(index|show|delete) to be performed\.$/,
        );
      }
      const forOther = await create(
        { name: 'x', public_key: ed.pub, user_id: 'admin' },
        '2.10',
        MEMBER,
      );
      assert.equal(
        novaError(forOther, 403),
        "Policy doesn't allow os_compute_api:os-keypairs:create to be performed.",
      );
      assert.deepEqual(await keypairRows(h), before);
      const admin = (await nova('GET', '/os-keypairs?user_id=member', { v: '2.10' })).body as {
        keypairs: { keypair: Body }[];
      };
      assert.deepEqual(
        admin.keypairs.map((k) => k.keypair.name),
        ['mine'],
      );
      const below = (await nova('GET', '/os-keypairs?user_id=member', { v: '2.9' })).body as {
        keypairs: { keypair: Body }[];
      };
      assert.deepEqual(
        below.keypairs.map((k) => k.keypair.name),
        ['root'],
        'user_id means nothing before 2.10',
      );
      const made = await create({ name: 'given', public_key: ed.pub, user_id: 'member' }, '2.10');
      assert.equal(made.status, 201, made.raw);
      assert.equal(kp(made).user_id, 'member');
      assert.equal(
        (await nova('DELETE', '/os-keypairs/given?user_id=member', { v: '2.10' })).status,
        204,
      );
    });

    test("refusals are Nova's and change nothing", async () => {
      await create({ name: 'taken', public_key: rsa.pub });
      const before = await keypairRows(h);
      const [type, blob] = rsa.pub.split(' ') as [string, string];
      const invalid = 'Keypair data is invalid: failed to generate fingerprint';
      const cases: [Body, string | undefined, number, string | RegExp][] = [
        [{ name: 'taken', public_key: ed.pub }, undefined, 409, "Key pair 'taken' already exists."],
        [{ name: 'n', public_key: 'not a key' }, undefined, 400, invalid],
        [{ name: 'n', public_key: `ssh-ed25519 ${blob}` }, undefined, 400, invalid],
        [{ name: 'n', public_key: `${type} ${blob.slice(0, -8)}` }, undefined, 400, invalid],
        [{ name: 'n', public_key: `${type} ${blob}!` }, undefined, 400, invalid],
        [
          { name: 'n', public_key: rsa.pub, type: 'x509' },
          '2.2',
          400,
          /^Keypair data is invalid: failed to generate X509 fingerprint/,
        ],
        [{ name: 'n', public_key: cert.pem }, '2.2', 400, invalid],
        [
          { name: 'a/b', public_key: rsa.pub },
          undefined,
          400,
          'Keypair data is invalid: Keypair name contains unsafe characters',
        ],
        [
          { name: 'a.b' },
          undefined,
          400,
          'Keypair data is invalid: Keypair name contains unsafe characters',
        ],
        [
          { name: ' lead', public_key: rsa.pub },
          undefined,
          400,
          /^Invalid input for field\/attribute keypair\.name\./,
        ],
        [
          { name: 'x'.repeat(256) },
          undefined,
          400,
          /keypair\.name\. Value: must be 1 to 255 characters/,
        ],
        [{ name: '' }, undefined, 400, /keypair\.name/],
        [{ public_key: rsa.pub }, undefined, 400, /keypair\.name\. Value: is required/],
        [
          { name: 'n', type: 'ssh' },
          '2.1',
          400,
          /keypair\.type\. Value: is not a recognised attribute/,
        ],
        [{ name: 'n', type: 'rsa' }, '2.2', 400, /keypair\.type/],
        [
          { name: 'n', user_id: 'member' },
          '2.9',
          400,
          /keypair\.user_id\. Value: is not a recognised attribute/,
        ],
        [{ name: 'n', public_key: 7 }, undefined, 400, /keypair\.public_key/],
      ];
      for (const [body, v, status, message] of cases) {
        const r = await create(body, v);
        const got = novaError(r, status);
        if (typeof message === 'string') assert.equal(got, message, JSON.stringify(body));
        else assert.match(got, message, JSON.stringify(body));
      }
      assert.deepEqual(await keypairRows(h), before);
    });

    test('the key_pairs quota admits exactly its limit under concurrent creates; the detail counts them', async () => {
      const project = DEFAULT_PROJECT_ID;
      const set = await h.call('PUT', `/os-quota-sets/${project}`, { quota_set: { key_pairs: 3 } });
      assert.equal(set.status, 200, set.raw);
      const all = await Promise.all(
        Array.from({ length: 6 }, (_, i) => create({ name: `q${i}`, public_key: ed.pub }, '2.2')),
      );
      assert.deepEqual(all.map((r) => r.status).sort(), [201, 201, 201, 403, 403, 403]);
      for (const r of all.filter((x) => x.status === 403))
        assert.equal(novaError(r, 403), 'Quota exceeded, too many key pairs.');
      assert.equal((await keypairRows(h)).length, 3);
      assert.deepEqual([...new Set((await keypairRows(h)).map((r) => Number(r.seq)))].length, 3);
      const mine = await create({ name: 'member-own', public_key: ed.pub }, '2.2', MEMBER);
      assert.equal(mine.status, 201, 'counted per user');
      const detail = await h.call('GET', `/os-quota-sets/${project}/detail`);
      assert.deepEqual((detail.body as { quota_set: Body }).quota_set.key_pairs, {
        in_use: 3,
        limit: 3,
        reserved: 0,
      });
    });
  });
}
