/**
 * Server actions racing each other in kumo-api, on both database engines with a real
 * broker (api-servers-harness.ts), driven deterministically: the route's own pieces are
 * called in the order a race would interleave them (a read, then another writer, then the
 * UPDATE), no sleeps.
 *
 * Shown: a lock that lands after a non-admin's check is honoured by the task's UPDATE
 * (power action, rebuild, restore and forceDelete answer Nova's 409 "locked" and start
 * nothing; DELETE's soft delete takes the same lock-free condition, untested here); lock and unlock are decided by their UPDATE, not by the row read
 * before (a member neither replaces nor lifts an admin's lock it did not see); a restore
 * accepted between the reclaim pass's read and its UPDATE wins; of two reclaimers that
 * read the same ids only one deletes (one new task_id, one hint).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { staticCaller } from '../../api/caller.ts';
import { lockAs, reclaimableIds } from '../../api/db/server-changes.ts';
import { getInstanceRow } from '../../api/db/servers.ts';
import type { AppDeps } from '../../api/deps.ts';
import { reclaimBefore, reclaimOne, reclaimSoftDeleted } from '../../api/instance-delete.ts';
import { loadInstance, runAction } from '../../api/routes/server-action-rules.ts';
import { lockServer, unlockServer } from '../../api/routes/server-lock.ts';
import { rebuildServer } from '../../api/routes/server-rebuild.ts';
import { forceDeleteServer, restoreServer } from '../../api/routes/server-soft-delete.ts';
import { silentLogger } from '../../core/log.ts';
import {
  ADMIN,
  activeServer,
  DOWN,
  finishTask,
  type Harness,
  MEMBER,
  serversHarness,
} from './api-servers-harness.ts';

const INTERVAL = 600;
const member = { role: 'member', caller: staticCaller('member') } as FastifyRequest;

/** A server soft-deleted by DELETE and by its agent. */
async function softDeleted(h: Harness) {
  const id = await activeServer(h);
  assert.equal((await h.call('DELETE', `/servers/${id}`)).status, 204);
  await finishTask(h, id, 'soft-delete');
  return id;
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`server action races on ${engine}`, () => {
    const h = serversHarness(engine, { reclaimInstanceInterval: INTERVAL });
    const deps = (): AppDeps => ({
      db: h.db,
      broker: h.api,
      log: silentLogger(),
      clock: h.clock,
      settings: {
        adminToken: ADMIN,
        memberTokens: [MEMBER],
        agentDownTime: DOWN,
        bodyLimit: 1 << 20,
        reclaimInstanceInterval: INTERVAL,
      },
    });
    const row = async (id: string) => {
      const r = await getInstanceRow(h.db, id);
      assert.ok(r);
      return r;
    };
    const lockedMeanwhile = async (id: string) => {
      const stale = await loadInstance(deps(), member, id);
      assert.ok(await lockAs(h.db, id, 'admin', h.clock.now()));
      return stale;
    };
    const locked = (id: string) => ({ message: `Instance ${id} is locked` });

    test("a lock landing after a member's check is honoured by the task's UPDATE", async () => {
      const id = await activeServer(h);
      const before = await row(id);
      const pause = { name: 'pause', task: 'pausing', rule: { vm: ['active'], tasks: [null] } };
      await assert.rejects(
        runAction(deps(), member, await lockedMeanwhile(id), pause as never),
        locked(id),
      );
      const rebuild = { rebuild: { imageRef: h.images.plain } };
      await assert.rejects(
        rebuildServer(deps(), member, await lockedMeanwhile(id), rebuild),
        locked(id),
      );
      await assert.rejects(
        forceDeleteServer(deps(), member, await lockedMeanwhile(id)),
        locked(id),
      );
      const after = await row(id);
      assert.equal(after.taskState, null, 'nothing started');
      assert.equal(after.taskId, before.taskId);
      assert.equal(after.imageId, before.imageId, 'the rebuild changed nothing');
    });

    test("a lock landing after a member's check stops its restore", async () => {
      const id = await softDeleted(h);
      await assert.rejects(restoreServer(deps(), member, await lockedMeanwhile(id)), locked(id));
      assert.equal((await row(id)).taskState, null);
      assert.equal((await row(id)).vmState, 'soft-delete');
    });

    test('lock and unlock follow the row at their UPDATE, not the one read before', async () => {
      const id = await activeServer(h);
      const seenUnlocked = await lockedMeanwhile(id);
      await lockServer(deps(), member, seenUnlocked, { lock: null });
      assert.equal((await row(id)).lockedBy, 'admin', "a member's lock does not replace it");
      await assert.rejects(unlockServer(deps(), member, seenUnlocked, { unlock: null }), {
        message:
          "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed.",
      });
      assert.equal((await row(id)).lockedBy, 'admin', "nor lifts an admin's lock it did not see");
    });

    test('a restore accepted between the reclaim read and its UPDATE wins', async () => {
      const id = await softDeleted(h);
      h.advance(INTERVAL + 1);
      await h.report('h1');
      const before = reclaimBefore(deps(), INTERVAL);
      assert.deepEqual(await reclaimableIds(h.db, before), [id], 'the pass reads it as due');
      assert.equal((await h.act(id, { restore: null })).status, 202);
      const restoring = await row(id);
      assert.equal(await reclaimOne(deps(), id, before, DOWN), false);
      const after = await row(id);
      assert.equal(after.taskState, 'restoring', 'the restore goes on');
      assert.equal(after.taskId, restoring.taskId, 'no delete started');
      await finishTask(h, id, 'active');
      assert.equal((await h.show(id)).status, 'ACTIVE');
    });

    test('two reclaimers reading the same ids: one deletes, one task_id, one hint', async () => {
      const id = await softDeleted(h);
      const soft = await row(id);
      h.advance(INTERVAL + 1);
      await h.report('h1');
      const before = reclaimBefore(deps(), INTERVAL);
      const [first, second] = [
        await reclaimableIds(h.db, before),
        await reclaimableIds(h.db, before),
      ];
      assert.deepEqual([first, second], [[id], [id]]);
      assert.equal(await reclaimOne(deps(), id, before, DOWN), true);
      assert.equal(await reclaimOne(deps(), id, before, DOWN), false, 'the other replica');
      const after = await row(id);
      assert.equal(after.taskState, 'deleting');
      assert.equal(after.taskId, soft.taskId + 1, 'task_id bumped once');
      await h.waitHint('h1', id, after.taskId);
      const hints = h.hints('compute_agent.h1', 'instance', id);
      assert.equal(
        hints.filter(
          (m) => m.message.method === 'hint' && (m.message.args.revision ?? 0) > soft.taskId,
        ).length,
        1,
      );
      assert.deepEqual(await reclaimSoftDeleted(deps(), INTERVAL, DOWN), [], 'a later pass');
    });
  });
}
