/**
 * Nova's API microversions: `OpenStack-API-Version: compute 2.x` (or the older
 * `X-OpenStack-Nova-API-Version: 2.x`) selects the shapes of version 2.x, from 2.1 to
 * COMPUTE_MAX_MINOR; `latest` is the highest. Absent, a request is at 2.1. Headers are
 * read as Nova reads them (microversion_parse, then APIVersionRequest).
 *
 * Invariants: every compute request (Nova's family, not the version documents) has
 * `req.computeVersion` before its route runs, and its response — errors included —
 * echoes the version in both headers with `Vary` naming them; a version outside the
 * range is a 406 and a malformed one a 400, both before the route runs. Routes branch
 * on `atLeast(req, minor)`, never on the header text.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../contracts/errors.ts';
import { requestFamily } from './roots.ts';

/**
 * The highest compute microversion Kumo serves faithfully: 2.3 (extended server
 * attributes), 2.9 (`locked`), 2.16 (`host_status`). 2.17 adds an action
 * (trigger_crash_dump) Kumo does not have.
 */
export const COMPUTE_MAX_MINOR = 16;
export const COMPUTE_MIN_MINOR = 1;
/** Nova's `updated` dates for v2.1 in its version documents. */
export const COMPUTE_UPDATED = '2013-07-23T11:33:21Z';

declare module 'fastify' {
  interface FastifyRequest {
    /** The compute microversion's minor number (2.<minor>); set on Nova's family only. */
    computeVersion: number;
  }
  interface FastifyContextConfig {
    /** A version document: no microversion negotiation. */
    versionless?: boolean;
  }
}

export const computeVersionText = (minor: number) => `2.${minor}`;

/** A header's values, folded as one comma-separated list (repeated headers too). */
function folded(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return [v]
    .flat()
    .join(',')
    .split(',')
    .map((x) => x.trim());
}

/**
 * The version text a request asks for, as microversion_parse reads it: the last
 * `compute <version>` entry of OpenStack-API-Version (an entry without a space is
 * skipped), else the last value of X-OpenStack-Nova-API-Version.
 */
export function versionHeader(headers: FastifyRequest['headers']): string | undefined {
  const entries = folded(headers['openstack-api-version']) ?? [];
  for (const entry of entries.reverse()) {
    const at = entry.search(/\s/);
    if (at < 0) continue;
    if (entry.slice(0, at).toLowerCase() === 'compute') return entry.slice(at).trim();
  }
  return folded(headers['x-openstack-nova-api-version'])?.at(-1);
}

/** The minor version asked for (Nova's APIVersionRequest): 400 malformed, 406 out of range. */
export function requestedMinor(raw: string | undefined): number {
  if (raw === undefined) return COMPUTE_MIN_MINOR;
  if (raw === 'latest') return COMPUTE_MAX_MINOR;
  const m = /^([1-9]\d*)\.([1-9]\d*|0)$/.exec(raw);
  if (!m)
    throw new ApiError(
      'BadRequest',
      `API Version String ${raw} is of invalid format. Must be of format MajorNum.MinorNum.`,
    );
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major !== 2 || minor < COMPUTE_MIN_MINOR || minor > COMPUTE_MAX_MINOR)
    throw new ApiError(
      'NotAcceptable',
      `Version ${m[1]}.${m[2]} is not supported by the API. Minimum is 2.${COMPUTE_MIN_MINOR} and maximum is 2.${COMPUTE_MAX_MINOR}.`,
    );
  return minor;
}

function echo(reply: FastifyReply, minor: number) {
  void reply
    .header('openstack-api-version', `compute ${computeVersionText(minor)}`)
    .header('x-openstack-nova-api-version', computeVersionText(minor))
    .header('vary', 'OpenStack-API-Version, X-OpenStack-Nova-API-Version');
}

/** The hook: negotiates every compute request's version (after authentication). */
export function installMicroversions(app: FastifyInstance) {
  app.decorateRequest('computeVersion', COMPUTE_MIN_MINOR);
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.versionless) return;
    if (requestFamily(req.raw, req.url) !== 'nova') return;
    const minor = requestedMinor(versionHeader(req.headers));
    req.computeVersion = minor;
    echo(reply, minor);
  });
}

/** The request is at 2.<minor> or later. */
export const atLeast = (req: FastifyRequest, minor: number) => req.computeVersion >= minor;
