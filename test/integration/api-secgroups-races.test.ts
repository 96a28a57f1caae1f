/**
 * Security groups under PostgreSQL's row locks: a request that waits on another
 * transaction's lock and then meets a foreign key that transaction committed answers with
 * Neutron's error (never a 500) and changes nothing. SQLite runs one writer at a time, so
 * these interleavings exist on PostgreSQL only; the other transaction stands in for a
 * concurrent API request at the row level, and the test waits until PostgreSQL reports
 * the request blocked on it before letting it commit.
 *
 * Invariant under test: a group bound to a port meanwhile is SecurityGroupInUse on
 * delete; a remote group deleted meanwhile is SecurityGroupNotFound on rule create.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Queryable } from '../../api/db/index.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { err, secgroupApp } from './api-secgroups-harness.ts';

const GROUPS = '/v2.0/security-groups';
const RULES = '/v2.0/security-group-rules';

describe('security groups under concurrent transactions on postgres', () => {
  const h = secgroupApp('postgres');
  const { call, group } = h;
  const { A: memberA } = h.tokens;

  /** Until some statement of this database waits on a lock (10 s at most). */
  async function someoneWaits() {
    for (let i = 0; i < 200; i++) {
      const rows = await h.api.db.query<{ n: unknown }>(
        `SELECT count(*) AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      if (Number(rows[0]?.n) > 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail('no request ever waited on the held transaction');
  }

  /** Runs `write` in a transaction held open until `request` waits on it, then commits. */
  async function during<T>(write: (tx: Queryable) => Promise<unknown>, request: () => Promise<T>) {
    let go!: () => void;
    let written!: () => void;
    const release = new Promise<void>((r) => (go = r));
    const ready = new Promise<void>((r) => (written = r));
    const held = h.api.db.transaction(async (tx) => {
      await write(tx);
      written();
      await release;
    });
    await ready;
    const answer = request();
    await someoneWaits();
    go();
    await held;
    return answer;
  }

  test('a port bound while the delete waits: 409 SecurityGroupInUse, group kept', async () => {
    const g = await group(memberA, { name: 'raced-bind' });
    const net = await h.made<Network>(memberA, 'network', {});
    const port = await h.made<Port>(memberA, 'port', { network_id: net.id, security_groups: [] });
    const r = await during(
      (tx) =>
        tx.query(
          'INSERT INTO securitygroupportbindings (port_id, security_group_id) VALUES (?, ?)',
          [port.id, g.id],
        ),
      () => call(memberA, 'DELETE', `${GROUPS}/${g.id}`),
    );
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.deepEqual(
      [err(r).type, err(r).message],
      ['SecurityGroupInUse', `Security Group ${g.id} in use.`],
    );
    const after = await call(memberA, 'GET', `${GROUPS}/${g.id}`);
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.security_group, g);
  });

  test('a remote group deleted while the rule is written: 404 naming it, no rule', async () => {
    const g = await group(memberA, { name: 'raced-owner' });
    const remote = await group(memberA, { name: 'raced-remote' });
    const before = await h.state();
    const r = await during(
      (tx) => tx.query('DELETE FROM securitygroups WHERE id = ?', [remote.id]),
      () =>
        call(memberA, 'POST', RULES, {
          security_group_rule: {
            security_group_id: g.id,
            direction: 'ingress',
            remote_group_id: remote.id,
          },
        }),
    );
    assert.equal(r.status, 404, JSON.stringify(r.body));
    assert.deepEqual(
      [err(r).type, err(r).message],
      ['SecurityGroupNotFound', `Security group ${remote.id} does not exist`],
    );
    const gone = (x: Record<string, unknown>) =>
      x.id === remote.id || x.security_group_id === remote.id;
    assert.deepEqual(await h.state(), {
      ...before,
      groups: before.groups.filter((x) => !gone(x)),
      rules: before.rules.filter((x) => !gone(x)),
    });
  });
});
