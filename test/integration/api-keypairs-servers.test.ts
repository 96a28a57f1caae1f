/**
 * POST /servers with key_name, user_data and config_drive on both database engines
 * (api-servers-harness: a real database and broker, the agents on their real queues).
 *
 * Shown: the instance row keeps the key pair's name and its public key as it was at
 * create (deleting the key pair afterwards changes neither), the user data as given and
 * config_drive as a boolean (Nova's boolean strings too); the views show key_name,
 * config_drive "True" or "" and, to admins from 2.3, OS-EXT-SRV-ATTR:user_data; the spec
 * the agent fetches is unchanged. Refusals — another user's or a missing key pair,
 * oversized or malformed user data, a config_drive that is no boolean — are Nova's 400
 * naming the field, with no instance, port or hint made.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, test } from 'node:test';
import { tempDir } from '../helpers/env.ts';
import { novaCall, novaError, rowsOf, sshKey } from './api-keypairs-helpers.ts';
import { type Body, MEMBER, type Server, serversHarness } from './api-servers-harness.ts';

const dir = tempDir();
after(() => dir.cleanup());
const key = sshKey(dir.path, 'boot', 'ed25519');
const other = sshKey(dir.path, 'other', 'rsa', 2048);
const USER_DATA = Buffer.from('#!/bin/sh\necho hello from user data\n').toString('base64');

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`servers with key pairs, user data and config drives on ${engine}`, () => {
    const h = serversHarness(engine);
    const nova = novaCall(h);
    const server = (extra: Body) => ({
      server: {
        name: 'vm',
        flavorRef: '1',
        imageRef: h.images.plain,
        networks: [{ uuid: h.net.n.id }],
        ...extra,
      },
    });
    const rowOf = async (id: string) =>
      (
        await rowsOf(
          h,
          `SELECT key_name, key_data, user_data, config_drive FROM instances WHERE id = '${id}'`,
        )
      )[0];
    const snapshot = async () => ({
      instances: await rowsOf(h, 'SELECT id FROM instances ORDER BY id'),
      ports: await rowsOf(h, 'SELECT id FROM ports ORDER BY id'),
      hints: h.received.length,
    });

    beforeEach(async () => {
      await h.db.query('DELETE FROM keypairs');
      for (const [name, k, token] of [
        ['boot', key, undefined],
        ['members', other, MEMBER],
      ] as const) {
        const r = await nova('POST', '/os-keypairs', {
          body: { keypair: { name, public_key: k.pub } },
          ...(token ? { token } : {}),
        });
        assert.equal(r.status, 200, r.raw);
      }
      await h.report('h1');
    });

    test('key_name, user_data and config_drive are stored and shown as Nova shows them', async () => {
      const id = await h.boot({
        networks: [{ uuid: h.net.n.id }],
        key_name: 'boot',
        user_data: USER_DATA,
        config_drive: true,
      });
      const row = await rowOf(id);
      assert.deepEqual(
        { ...row, config_drive: Boolean(row?.config_drive) },
        {
          key_name: 'boot',
          key_data: key.pub,
          user_data: USER_DATA,
          config_drive: true,
        },
      );
      const shown = await h.show(id);
      assert.equal(shown.key_name, 'boot');
      assert.equal(shown.config_drive, 'True');
      assert.equal(shown['OS-EXT-SRV-ATTR:user_data'], undefined, 'user data only from 2.3');
      const at23 = (await nova('GET', `/servers/${id}`, { v: '2.3' })).body as { server: Server };
      assert.equal(at23.server['OS-EXT-SRV-ATTR:user_data'], USER_DATA);
      const detail = (await nova('GET', '/servers/detail', { v: '2.16' })).body as {
        servers: Server[];
      };
      assert.equal(detail.servers.find((s) => s.id === id)?.key_name, 'boot');
      const deleted = await nova('DELETE', '/os-keypairs/boot');
      assert.equal(deleted.status, 202);
      assert.deepEqual(await rowOf(id), row, 'the instance keeps its copy');
      assert.equal((await h.show(id)).key_name, 'boot');
    });

    test('without them: key_name null, config_drive "", user data null; Nova\'s boolean strings', async () => {
      const plain = await h.show(await h.boot({ networks: [{ uuid: h.net.n.id }] }));
      assert.equal(plain.key_name, null);
      assert.equal(plain.config_drive, '');
      const at23 = (await nova('GET', `/servers/${plain.id}`, { v: '2.3' })).body as {
        server: Server;
      };
      assert.equal(at23.server['OS-EXT-SRV-ATTR:user_data'], null);
      for (const [given, stored] of [
        ['yes', true],
        ['False', false],
        [false, false],
      ] as const) {
        const id = await h.boot({ networks: [{ uuid: h.net.n.id }], config_drive: given });
        assert.equal(Boolean((await rowOf(id))?.config_drive), stored, String(given));
        assert.equal((await h.show(id)).config_drive, stored ? 'True' : '');
      }
    });

    test("a member boots with its own key pair; the admin's is an invalid key_name to it", async () => {
      const mine = await nova('POST', '/servers', {
        body: server({ key_name: 'members' }),
        token: MEMBER,
      });
      assert.equal(mine.status, 202, mine.raw);
      const id = (mine.body as { server: { id: string } }).server.id;
      assert.equal((await rowOf(id))?.key_data, other.pub);
      const member = await nova('GET', `/servers/${id}`, { token: MEMBER, v: '2.3' });
      const shown = (member.body as { server: Server }).server;
      assert.equal(shown.key_name, 'members');
      assert.equal(shown['OS-EXT-SRV-ATTR:user_data'], undefined, 'admins only');
    });

    test("refused creates are Nova's 400 naming the field and make nothing", async () => {
      const before = await snapshot();
      const cases: [Body, string | RegExp, string?][] = [
        [{ key_name: 'boot' }, 'Invalid key_name provided.', MEMBER],
        [{ key_name: 'nope' }, 'Invalid key_name provided.'],
        [{ key_name: '' }, /server\.key_name/],
        [
          { user_data: 'A'.repeat(65536) },
          /^Invalid input for field\/attribute server\.user_data\. Value: 'A{40}…' is too long/,
        ],
        [
          { user_data: 'not base64!' },
          "Invalid input for field/attribute server.user_data. Value: 'not base64!' is not a 'base64'",
        ],
        [
          { user_data: 'QUJD\u0000REVG' },
          "Invalid input for field/attribute server.user_data. Value: 'QUJD\\u0000REVG' is not a 'base64'",
        ],
        [{ user_data: 'QUJD\nREV' }, /server\.user_data.*is not a 'base64'/],
        [{ user_data: 'QUJDRA=' }, /server\.user_data.*is not a 'base64'/],
        [{ user_data: 12 }, /server\.user_data\. Value: must be a string/],
        [
          { config_drive: 'maybe' },
          'Invalid input for field/attribute server.config_drive. Value: "maybe" is not a boolean',
        ],
        [{ config_drive: null }, /server\.config_drive/],
      ];
      for (const [extra, message, token] of cases) {
        const r = await nova('POST', '/servers', {
          body: server(extra),
          ...(token ? { token } : {}),
        });
        const got = novaError(r, 400);
        if (typeof message === 'string')
          assert.equal(got, message, JSON.stringify(extra).slice(0, 80));
        else assert.match(got, message, JSON.stringify(extra).slice(0, 80));
      }
      assert.deepEqual(await snapshot(), before);
      const largest = 'A'.repeat(65532);
      const id = await h.boot({ networks: [{ uuid: h.net.n.id }], user_data: largest });
      assert.equal(
        (await rowOf(id))?.user_data,
        largest,
        "Nova's limit is 65535 characters of base64",
      );
      // Wrapped base64 (as `base64` prints it) is Nova's base64 too, stored as given.
      const wrapped = 'IyEvYmluL3NoCmVjaG8g\r\naGVsbG8K\n';
      const w = await h.boot({ networks: [{ uuid: h.net.n.id }], user_data: wrapped });
      assert.equal((await rowOf(w))?.user_data, wrapped);
    });
  });
}
