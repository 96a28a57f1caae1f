/**
 * The metadata contract's own checks: a relay's question names exactly one of a router and
 * a network (an RPC that names both or neither is refused at the edge, naming the fields),
 * an address only in canonical form, Nova's signature compared whole, and a config drive
 * path keeps to its trees and a safe alphabet.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage, parseMessage } from '../../contracts/messages.ts';
import { CONFIG_DRIVE_PATH, signatureMatches, signInstanceId } from '../../contracts/metadata.ts';

const ROUTER = '11111111-1111-4111-8111-111111111111';
const NETWORK = '22222222-2222-4222-8222-222222222222';
const INSTANCE = '33333333-3333-4333-8333-333333333333';

const ask = (args: Record<string, unknown>) =>
  parseMessage(encodeMessage('get_metadata_instance', args as never));

test('get_metadata_instance names exactly one of router_id and network_id', () => {
  const base = { host: 'n1', ip: '10.0.0.5' };
  assert.deepEqual(ask({ ...base, router_id: ROUTER }).args, { ...base, router_id: ROUTER });
  assert.deepEqual(ask({ ...base, network_id: NETWORK }).args, { ...base, network_id: NETWORK });
  for (const which of [{ router_id: ROUTER, network_id: NETWORK }, {}])
    assert.throws(() => ask({ ...base, ...which }), /exactly one of router_id and network_id/);
  assert.throws(
    () => ask({ ...base, router_id: ROUTER, ip: '010.0.0.5' }),
    /args\.ip: must be an IP address/,
  );
  assert.throws(() => ask({ ...base, router_id: 'R1' }), /args\.router_id/);
});

test("signatures: Nova's HMAC-SHA256 hex, compared whole", () => {
  const sig = signInstanceId('s3cret', INSTANCE);
  assert.match(sig, /^[0-9a-f]{64}$/);
  assert.equal(signatureMatches('s3cret', INSTANCE, sig), true);
  assert.equal(signatureMatches('other', INSTANCE, sig), false);
  assert.equal(signatureMatches('s3cret', INSTANCE, sig.slice(0, 63)), false);
  assert.equal(signatureMatches('s3cret', INSTANCE, `${sig}0`), false);
  assert.equal(signatureMatches('s3cret', INSTANCE, sig.toUpperCase()), false);
  assert.equal(signatureMatches('s3cret', INSTANCE, ''), false);
});

test('config drive paths: openstack/… or ec2/…, a safe alphabet', () => {
  for (const ok of ['openstack/latest/meta_data.json', 'ec2/2009-04-04/user-data', 'ec2/a..b'])
    assert.ok(CONFIG_DRIVE_PATH.test(ok), ok);
  for (const bad of [
    '/ec2/x',
    'ec2/x"y',
    'other/x',
    'ec2',
    'ec2//x',
    'ec2/x/',
    'ec2/a b',
    'ec2/a\nb',
  ])
    assert.ok(!CONFIG_DRIVE_PATH.test(bad), bad);
});
