/**
 * Cinder's API microversions: `OpenStack-API-Version: volume 3.x` selects the shapes of
 * version 3.x, from 3.0 to VOLUME_MAX_MINOR; `latest` is the highest; absent, a request
 * is at 3.0. The header is read as Cinder reads it (microversion_parse, then
 * APIVersionRequest): the last `volume <version>` entry counts.
 *
 * Invariants: every request of Cinder's family under /v3 (not the version documents) has
 * `req.volumeVersion` before its route runs, and its response — errors included — echoes
 * the version with `Vary: OpenStack-API-Version`; a version outside the range is Cinder's
 * 406 and a malformed one its 400, both before the route runs. Routes branch on
 * `volumeAtLeast(req, minor)`, never on the header text.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../contracts/errors.ts';
import { requestFamily } from './roots.ts';

/**
 * The highest volume microversion Kumo serves faithfully: 3.3 (user messages). 3.4 adds
 * a glance_metadata filter on volume lists, which Kumo (no volumes from images) lacks.
 */
export const VOLUME_MAX_MINOR = 3;
export const VOLUME_MIN_MINOR = 0;
/** Cinder's `updated` date of v3 in its version documents. */
export const VOLUME_UPDATED = '2016-02-08T12:20:21Z';

declare module 'fastify' {
  interface FastifyRequest {
    /** The volume microversion's minor number (3.<minor>); set on Cinder's family only. */
    volumeVersion: number;
  }
}

export const volumeVersionText = (minor: number) => `3.${minor}`;

/** The last `volume <version>` entry of OpenStack-API-Version (repeated headers folded). */
export function volumeVersionHeader(headers: FastifyRequest['headers']): string | undefined {
  const raw = headers['openstack-api-version'];
  if (raw === undefined) return undefined;
  const entries = [raw]
    .flat()
    .join(',')
    .split(',')
    .map((x) => x.trim());
  for (const entry of entries.reverse()) {
    const at = entry.search(/\s/);
    if (at < 0) continue;
    if (entry.slice(0, at).toLowerCase() === 'volume') return entry.slice(at).trim();
  }
  return undefined;
}

/** The minor version asked for (Cinder's APIVersionRequest): 400 malformed, 406 out of range. */
export function requestedVolumeMinor(raw: string | undefined): number {
  if (raw === undefined) return VOLUME_MIN_MINOR;
  if (raw.toLowerCase() === 'latest') return VOLUME_MAX_MINOR;
  const m = /^([1-9]\d*)\.([1-9]\d*|0)$/.exec(raw);
  if (!m)
    throw new ApiError(
      'BadRequest',
      `API Version String ${raw} is of invalid format. Must be of format MajorNum.MinorNum.`,
    );
  const minor = Number(m[2]);
  if (Number(m[1]) !== 3 || minor < VOLUME_MIN_MINOR || minor > VOLUME_MAX_MINOR)
    throw new ApiError(
      'NotAcceptable',
      `Version ${m[1]}.${m[2]} is not supported by the API. Minimum is 3.${VOLUME_MIN_MINOR} and maximum is 3.${VOLUME_MAX_MINOR}.`,
    );
  return minor;
}

function echo(reply: FastifyReply, minor: number) {
  void reply
    .header('openstack-api-version', `volume ${volumeVersionText(minor)}`)
    .header('vary', 'OpenStack-API-Version');
}

/** The hook: negotiates every volume request's version. */
export function installVolumeVersions(app: FastifyInstance) {
  app.decorateRequest('volumeVersion', VOLUME_MIN_MINOR);
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.versionless) return;
    if (requestFamily(req.raw, req.url) !== 'cinder') return;
    const minor = requestedVolumeMinor(volumeVersionHeader(req.headers));
    req.volumeVersion = minor;
    echo(reply, minor);
  });
}

/** The request is at 3.<minor> or later. */
export const volumeAtLeast = (req: FastifyRequest, minor: number) => req.volumeVersion >= minor;
