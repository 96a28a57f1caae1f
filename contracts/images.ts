/**
 * Glance v2 vocabulary beyond the image itself: the two JSON-patch dialects (v2.1's
 * `{"op", "path", "value"}` and v2.0's `{"<op>": path, "value"}`), image members, and the
 * forms of the ids they carry.
 *
 * Invariants: a patch of either dialect becomes one list of `{op, path, value}` before
 * anything reads it, with Glance's messages for a malformed operation; a member id has the
 * form of a project id (Keystone's: 1-64 letters, digits, `_` or `-`) before it is stored
 * — like Glance, kumo does not ask the identity service whether that project exists (an
 * external Keystone's projects are not kumo's to list); a member status is one of Glance's
 * three.
 */
import { ApiError } from './errors.ts';
import { isPlainObject, PROJECT_ID, type Schema, str, ValidationError } from './schema.ts';

/** Glance's id pattern (any case), as its schema's `id`, `kernel_id` and `ramdisk_id`. */
export const GLANCE_UUID =
  /^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$/;
export const glanceUuid = () => str({ pattern: GLANCE_UUID, patternName: 'a UUID' });

/** The two PATCH media types and the JSON-schema draft each speaks (Glance's numbers). */
export const PATCH_DRAFTS = {
  'application/openstack-images-v2.0-json-patch': 4,
  'application/openstack-images-v2.1-json-patch': 10,
} as const;
export type PatchDraft = (typeof PATCH_DRAFTS)[keyof typeof PATCH_DRAFTS];

const OPS = ['add', 'remove', 'replace'] as const;
const badRequest = (message: string) => new ApiError('BadRequest', message);

/** A v2.0 operation, `{"replace": "/name", "value": "x"}`, as v2.1's `{op, path, value}`. */
function draft4Op(raw: Record<string, unknown>): Record<string, unknown> {
  const named = OPS.filter((op) => Object.hasOwn(raw, op));
  if (named.length > 1)
    throw badRequest(
      'Operation objects must contain only one member named "add", "remove", or "replace".',
    );
  const op = named[0];
  if (op === undefined)
    throw badRequest(
      'Operation objects must contain exactly one member named "add", "remove", or "replace".',
    );
  if (op !== 'remove' && !Object.hasOwn(raw, 'value'))
    throw badRequest(`Operation "${op}" requires a member named "value".`);
  return op === 'remove' ? { op, path: raw[op] } : { op, path: raw[op], value: raw.value };
}

/**
 * The body of a v2.0 patch in v2.1's shape (ImagePatch then checks it); a v2.1 body is
 * returned as it came.
 */
export function normalizePatch(body: unknown, draft: PatchDraft): unknown {
  if (!Array.isArray(body))
    throw badRequest('Request body must be a JSON array of operation objects.');
  if (draft === 10) return body;
  return body.map((raw) => {
    if (!isPlainObject(raw)) throw badRequest('Operations must be JSON objects.');
    return draft4Op(raw);
  });
}

/* ----------------------------------------------------------------- members */

export const MEMBER_STATUSES = ['pending', 'accepted', 'rejected'] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];
/** Glance's image_member_quota default. */
export const MAX_IMAGE_MEMBERS = 128;
/** Keystone's project id column is 64 characters; Kumo's ids are letters, digits, _ -. */

export interface ImageMember {
  created_at: string;
  updated_at: string;
  image_id: string;
  member_id: string;
  status: MemberStatus;
  schema: '/v2/schemas/member';
}

const memberId = (value: unknown): string => {
  if (typeof value !== 'string' || !PROJECT_ID.test(value))
    throw new ValidationError('member', 'must be a project id (1-64 letters, digits, _ or -)');
  return value;
};

/** POST /images/{id}/members: `{"member": "<project id>"}`, with Glance's messages. */
export const MemberCreate: Schema<string> = {
  kind: 'object',
  parse(body) {
    if (body === undefined) throw badRequest('Body expected in request.');
    if (!isPlainObject(body))
      throw badRequest('Expected a member in the form: {"member": "image_id"}');
    if (!Object.hasOwn(body, 'member')) throw badRequest('Member to be added not specified');
    if (!body.member) throw badRequest("Member can't be empty");
    return memberId(body.member);
  },
};

/** PUT /images/{id}/members/{member}: `{"status": "accepted"}`, with Glance's messages. */
export const MemberUpdate: Schema<MemberStatus> = {
  kind: 'object',
  parse(body) {
    if (body === undefined) throw badRequest('Body expected in request.');
    if (!isPlainObject(body))
      throw badRequest('Expected a status in the form: {"status": "status"}');
    if (!Object.hasOwn(body, 'status')) throw badRequest('Status not specified');
    const status = body.status;
    if (!(MEMBER_STATUSES as readonly unknown[]).includes(status))
      throw badRequest('Incorrect request: Status must be "pending", "accepted" or "rejected".');
    return status as MemberStatus;
  },
};
