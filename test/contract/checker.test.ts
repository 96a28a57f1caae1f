/**
 * check.py itself: hand-made answers that break the published schemas or the header rules
 * are reported with the record and the path in the body, so the contract tests cannot
 * pass vacuously; a faithful answer passes.
 *
 * Invariant under test: each rule the checker claims is applied (the schema tempest picks
 * for the microversion asked, request ids, microversion echo, error bodies, unknown checks).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CallRecord, checkRecords } from './records.ts';

const RID = 'req-0f0e0d0c-0b0a-4009-8807-060504030201';
const ids = { 'x-openstack-request-id': RID, 'x-compute-request-id': RID };
const echo = (v: string) => ({
  'x-openstack-nova-api-version': v,
  'openstack-api-version': `compute ${v}`,
  vary: 'OpenStack-API-Version, X-OpenStack-Nova-API-Version',
});
const flavor = {
  id: '1',
  name: 'm1.tiny',
  links: [{ rel: 'self', href: 'http://h/v2.1/flavors/1' }],
};
const record = (over: Partial<CallRecord>): CallRecord => ({
  family: 'compute',
  check: 'flavors.list_flavors',
  method: 'GET',
  url: '/compute/v2.1/flavors',
  microversion: '2.1',
  status: 200,
  headers: { ...ids, ...echo('2.1') },
  body: { flavors: [flavor] },
  ...over,
});

describe('the contract checker', () => {
  test('a faithful answer passes; each broken rule is named with its record', async () => {
    const records = [
      record({}),
      record({ body: { flavors: [{ ...flavor, description: null }] } }),
      record({ headers: { ...echo('2.1'), 'x-openstack-request-id': 'abc' } }),
      record({ headers: { ...ids, ...echo('2.3') } }),
      record({ check: 'servers.no_such_call' }),
      record({
        check: 'compute.error',
        status: 404,
        body: { itemNotFound: { code: 404, message: 'gone', request_id: 'req-other' } },
      }),
      record({ status: 404, body: { itemNotFound: { code: 404, message: 'x' } } }),
    ];
    const problems = await checkRecords(records);
    const of = (i: number) => problems.filter((p) => p.startsWith(`#${i} `));
    assert.deepEqual(of(0), []);
    assert.match(of(1).join('\n'), /body\["flavors"\]\[0\]: .*'description' was unexpected/);
    assert.match(of(2).join('\n'), /x-openstack-request-id is 'abc', not req-<uuid>/);
    assert.match(of(2).join('\n'), /x-compute-request-id is None, not the request id 'abc'/);
    assert.match(of(3).join('\n'), /x-openstack-nova-api-version is '2.3', asked 2.1/);
    assert.match(of(4).join('\n'), /unknown check 'servers.no_such_call'/);
    assert.match(of(5).join('\n'), /request_id 'req-other', not/);
    assert.match(of(6).join('\n'), /status 404, the schema expects \[200\]/);
  });

  test("the schema is tempest's for the microversion asked", async () => {
    const view = {
      id: 'x',
      name: 'vm',
      status: 'ACTIVE',
      image: '',
      flavor: { id: '1', links: [] },
      user_id: 'u',
      tenant_id: 't',
      created: '2026-01-01T00:00:00Z',
      updated: '2026-01-01T00:00:00Z',
      metadata: {},
      links: [],
      addresses: {},
      hostId: '',
    };
    const at = (v: string, extra: object) =>
      record({
        check: 'servers.update_server',
        url: '/compute/v2.1/servers/x',
        method: 'PUT',
        microversion: v,
        headers: { ...ids, ...echo(v) },
        body: { server: { ...view, ...extra } },
      });
    const problems = await checkRecords([
      at('2.1', {}),
      at('2.5', { locked: false }),
      at('2.9', {}),
      at('2.9', { locked: false }),
    ]);
    const of = (i: number) => problems.filter((p) => p.startsWith(`#${i} `)).join('\n');
    assert.equal(of(0), '');
    assert.match(of(1), /body\["server"\]: .*'locked' was unexpected/);
    assert.match(of(2), /body\["server"\]: 'locked' is a required property/);
    assert.equal(of(3), '');
  });

  test('an image body is also checked against the image schema Kumo serves', async () => {
    const glance = { 'x-openstack-request-id': RID };
    const served = {
      name: 'image',
      properties: { name: { type: 'integer' } },
      additionalProperties: { type: 'string' },
    };
    const problems = await checkRecords([
      record({
        family: 'image',
        check: 'image.schema.image',
        url: '/image/v2/schemas/image',
        microversion: undefined,
        headers: glance,
        body: served,
      }),
      record({
        family: 'image',
        check: 'image.show',
        url: '/image/v2/images/x',
        microversion: undefined,
        headers: glance,
        body: { name: 'not-an-integer' },
      }),
    ]);
    const alone = await checkRecords([
      record({
        family: 'image',
        check: 'image.show',
        url: '/image/v2/images/x',
        microversion: undefined,
        headers: glance,
        body: { name: 'n' },
      }),
    ]);
    assert.match(alone.join('\n'), /no image\.schema\.image answer was recorded/);
    assert.match(
      problems.filter((p) => p.startsWith('#1 ')).join('\n'),
      /against the served \/v2\/schemas\/image: body\["name"\]: 'not-an-integer' is not of type 'integer'/,
    );
  });
});
