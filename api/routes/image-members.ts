/**
 * Glance v2 image members: GET/POST /images/{id}/members and GET/PUT/DELETE
 * /images/{id}/members/{member_id}, in Glance's shapes and with its messages.
 *
 * Invariants: only a `shared` image has members (Glance's 403, or 404 on show); a caller
 * acts for its token's project (image-access.ts) — the owner's project adds and removes
 * members (add_member, delete_member), only the member's own project answers (PUT,
 * modify_member: the owner cannot accept for it), and of other owners' images a project
 * sees only its own membership; admins do anything; an image the caller cannot see is
 * Glance's 404 "Image … not found."; an image has at most MAX_IMAGE_MEMBERS members, each
 * once (409).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { MAX_IMAGE_MEMBERS, MemberCreate, MemberUpdate } from '../../contracts/images.ts';
import {
  countMembers,
  deleteMember,
  getMember,
  insertMember,
  listMembers,
  setMemberStatus,
} from '../db/image-members.ts';
import type { ImageRecord } from '../db/images.ts';
import type { AppDeps } from '../deps.ts';
import { ownsImage, viewerProject } from './image-access.ts';

type Params = { Params: { id: string; member: string } };
type Load = (req: FastifyRequest, id: string) => Promise<ImageRecord>;

const SHARED_ONLY = 'Only shared images have members.';
const forbidden = (message: string) => new ApiError('PolicyNotAuthorized', message);
const seesMember = (req: FastifyRequest, image: ImageRecord, memberId: string) =>
  ownsImage(req, image) || memberId === viewerProject(req);

function memberNotFound(image: ImageRecord, memberId: string) {
  return new ApiError(
    'NotFound',
    `${memberId} not found in the member list of the image ${image.id}.`,
  );
}

/** The image of a member route: Glance's member routes word their 404 so. */
async function imageOf(load: Load, req: FastifyRequest, id: string) {
  try {
    return await load(req, id);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404)
      throw new ApiError('NotFound', `Image ${id} not found.`);
    throw e;
  }
}

async function create(deps: AppDeps, req: FastifyRequest<Params>, image: ImageRecord) {
  const memberId = MemberCreate.parse(req.body);
  if (image.visibility !== 'shared' || !ownsImage(req, image))
    throw forbidden(`Not allowed to create members for image ${image.id}.`);
  const count = await countMembers(deps.db, image.id);
  if (count >= MAX_IMAGE_MEMBERS)
    throw new ApiError(
      'RequestEntityTooLarge',
      `Image member limit exceeded for image ${image.id}: The limit has been exceeded on the number of allowed image members for this image. Attempted: ${count + 1}, Maximum: ${MAX_IMAGE_MEMBERS}:`,
    );
  if (!(await insertMember(deps.db, image.id, memberId, deps.clock.now())))
    throw new ApiError('Conflict', `Member ${memberId} is duplicated for image ${image.id}`);
  deps.log.info({ imageId: image.id, memberId }, 'image member added');
  return getMember(deps.db, image.id, memberId);
}

async function list(req: FastifyRequest<Params>, deps: AppDeps, image: ImageRecord) {
  if (image.visibility !== 'shared')
    throw forbidden(`Not allowed to list members for image ${image.id}: ${SHARED_ONLY}`);
  const members = await listMembers(deps.db, image.id);
  return {
    members: members.filter((m) => seesMember(req, image, m.member_id)),
    schema: '/v2/schemas/members',
  };
}

/** The member a show, update or delete names (404 when absent or not the caller's). */
async function memberOf(deps: AppDeps, req: FastifyRequest<Params>, image: ImageRecord) {
  const member = await getMember(deps.db, image.id, req.params.member);
  if (!member || !seesMember(req, image, member.member_id))
    throw memberNotFound(image, req.params.member);
  return member;
}

async function update(deps: AppDeps, req: FastifyRequest<Params>, image: ImageRecord) {
  const status = MemberUpdate.parse(req.body);
  const refused = forbidden(`Not allowed to update members for image ${image.id}.`);
  if (image.visibility !== 'shared') throw refused;
  const member = await memberOf(deps, req, image);
  if (req.role !== 'admin' && member.member_id !== viewerProject(req)) throw refused;
  if (!(await setMemberStatus(deps.db, image.id, member.member_id, status, deps.clock.now())))
    throw memberNotFound(image, member.member_id);
  deps.log.info({ imageId: image.id, memberId: member.member_id, status }, 'image member');
  return getMember(deps.db, image.id, member.member_id);
}

async function remove(deps: AppDeps, req: FastifyRequest<Params>, image: ImageRecord) {
  const refused = forbidden(`Not allowed to delete members for image ${image.id}.`);
  if (image.visibility !== 'shared') throw refused;
  const member = await memberOf(deps, req, image);
  if (!ownsImage(req, image)) throw refused;
  if (!(await deleteMember(deps.db, image.id, member.member_id)))
    throw memberNotFound(image, member.member_id);
  deps.log.info({ imageId: image.id, memberId: member.member_id }, 'image member removed');
}

export function imageMemberRoutes(scope: FastifyInstance, deps: AppDeps, load: Load) {
  const base = '/images/:id/members';
  const image = (req: FastifyRequest<Params>) => imageOf(load, req, req.params.id);
  scope.get(base, async (req: FastifyRequest<Params>) => list(req, deps, await image(req)));
  scope.post(base, async (req: FastifyRequest<Params>) => create(deps, req, await image(req)));
  scope.get(`${base}/:member`, async (req: FastifyRequest<Params>) => {
    const img = await image(req);
    if (img.visibility !== 'shared') throw new ApiError('NotFound', SHARED_ONLY);
    return memberOf(deps, req, img);
  });
  scope.put(`${base}/:member`, async (req: FastifyRequest<Params>) =>
    update(deps, req, await image(req)),
  );
  scope.delete(`${base}/:member`, async (req: FastifyRequest<Params>, reply) => {
    await remove(deps, req, await image(req));
    return reply.status(204).send();
  });
}
