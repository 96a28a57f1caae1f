/**
 * The checks the Neutron API suites share: `err` reads a NeutronError body, `creator`
 * makes a resource expecting 201, and `refusals` builds `refused` — the request answers
 * `status` with Neutron's error `type`, and the suite's `state()` (everything that request
 * could touch, as the suite chooses) is deep-equal before and after.
 *
 * Invariant: a refused request that answers another code or type, or changes anything the
 * suite's state shows, fails the test.
 */
import assert from 'node:assert/strict';

export type Body = Record<string, unknown>;
export interface Res {
  status: number;
  body: Body;
}
/** An authenticated request: `token`'s status and JSON body. */
export type Call = (token: string, method: string, url: string, payload?: unknown) => Promise<Res>;

export const err = (r: Res) =>
  (r.body as { NeutronError: { type: string; message: string; detail: string } }).NeutronError;

/** POST /v2.0/<kind>s with `{<kind>: body}`, which must answer 201; the created resource. */
export function creator(call: Call) {
  return async <T>(token: string, kind: string, body: Body): Promise<T> => {
    const r = await call(token, 'POST', `/v2.0/${kind}s`, { [kind]: body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body[kind] as T;
  };
}

/** `refused(status, type, token, method, url, payload?)`: the refusal's message. */
export function refusals(call: Call, state: () => Promise<unknown>) {
  return async (
    status: number,
    type: string,
    token: string,
    method: string,
    url: string,
    payload?: unknown,
  ): Promise<string> => {
    const before = await state();
    const r = await call(token, method, url, payload);
    assert.equal(r.status, status, `${method} ${url}: ${JSON.stringify(r.body)}`);
    assert.equal(err(r).type, type, JSON.stringify(r.body));
    assert.deepEqual(await state(), before, `${method} ${url} changed nothing`);
    return err(r).message;
  };
}
