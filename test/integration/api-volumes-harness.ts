/**
 * The api-volumes suites' harness: one kumo-api (test-api.ts: a real database of either
 * engine and a real broker) with signed Keystone tokens for an admin and two member
 * projects, a call helper on the `/volume/v3/{project}` root, and `serve`, which stands
 * in for the storage host's report (the volume agent and the report path are the
 * volume-agent and status-report suites'): it places a volume on a host and makes it
 * available, as the API's report handling does once the agent reports ACTIVE. The hints
 * the API casts to the storage hosts `storage1` and `storage2` are collected (`hints`).
 *
 * Invariant: call it inside a describe; every suite starts from an empty database.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { EXCHANGE, hostQueue, type Message } from '../../contracts/messages.ts';
import { waitFor } from '../helpers/env.ts';
import { testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export type Obj = Record<string, unknown>;
export interface Answer {
  status: number;
  body: Obj;
  headers: Record<string, unknown>;
}

export const STATIC_ADMIN = 'volume-admin-token';

export function volumesHarness(engine: 'sqlite' | 'postgres', settings: Obj = {}) {
  const tokens = testTokens();
  after(() => tokens.cleanup());
  const api = testApi(engine, {
    settings: { adminToken: STATIC_ADMIN, ...settings },
    tokens: tokens.authenticator,
  });
  const projects = { admin: hexId(), A: hexId(), B: hexId() };
  const who = {
    admin: tokens.token({ project: projects.admin, roles: ['admin'] }),
    A: tokens.token({ project: projects.A }),
    B: tokens.token({ project: projects.B }),
    readerA: tokens.token({ project: projects.A, roles: ['reader'] }),
  };
  type Who = keyof typeof who;
  const projectOf = (w: Who) => (w === 'readerA' ? projects.A : projects[w]);

  /** `method /volume/v3/<project of w><path>` as `w`; `version`: the volume microversion. */
  async function call(
    w: Who,
    method: string,
    path: string,
    body?: unknown,
    version?: string,
  ): Promise<Answer> {
    const res = await api.app.inject({
      method: method as 'GET',
      url: `/volume/v3/${projectOf(w)}${path}`,
      headers: {
        'x-auth-token': who[w],
        ...(version ? { 'openstack-api-version': `volume ${version}` } : {}),
      },
      ...(body === undefined ? {} : { payload: body as string }),
    });
    return {
      status: res.statusCode,
      body: (res.body ? res.json() : {}) as Obj,
      headers: res.headers,
    };
  }

  /** Creates a volume as `w` (202 asserted); its view. */
  async function create(w: Who, volume: Obj): Promise<Obj> {
    const r = await call(w, 'POST', '/volumes', { volume });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.volume as Obj;
  }

  /** The storage host served the volume: placed on `host`, available. */
  async function serve(id: string, host = 'storage1') {
    await api.db.query(
      "UPDATE volumes SET host = ?, status = 'available', status_reason = NULL WHERE id = ?",
      [host, id],
    );
  }

  /** Hints cast to the volume agents of storage1 and storage2, in arrival order. */
  const hints: { host: string; args: Obj }[] = [];
  before(async () => {
    for (const host of ['storage1', 'storage2']) {
      const name = hostQueue('volume_agent', host);
      api.broker.consume(
        { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] },
        async (m: Message) => {
          if (m.method === 'hint') hints.push({ host, args: m.args as Obj });
          return undefined;
        },
      );
      const probe = { resource: 'volume' as const, id: `probe-${host}` };
      await waitFor(`the ${name} queue`, async () => {
        await api.broker.cast(name, 'hint', probe);
        return hints.some((x) => x.args.id === probe.id) || undefined;
      });
    }
  });
  /** Waits for the hint `want` (a subset of its args) to reach `host`. */
  const hinted = (host: string, want: Obj) =>
    waitFor(`hint ${JSON.stringify(want)} to ${host}`, () =>
      hints.find((x) => x.host === host && Object.entries(want).every(([k, v]) => x.args[k] === v)),
    );

  const rows = async (sql: string, params: (string | number)[] = []) =>
    (await api.db.query(sql, params)).map((r) => ({ ...r }));

  return { api, projects, who, call, create, serve, rows, hints, hinted };
}
