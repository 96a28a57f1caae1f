/**
 * Who may see and who may change a Glance image, one rule for every route (show, list,
 * data, members, actions) and for Nova's boot and rebuild references (server-refs.ts).
 *
 * Invariants: until identity lands every non-admin acts for the default project
 * (contracts/network.ts DEFAULT_PROJECT_ID); admins and the compute agents' service token
 * see every image; anyone else sees public and community images, its own, and shared ones
 * it is a member of (any status, as Glance's is_image_visible) — an image it cannot see is
 * "not found", never "forbidden", so its existence does not leak; only the owner or an
 * admin changes one (Glance's 403 "You do not own this image").
 */
import { ApiError } from '../../contracts/errors.ts';
import type { MemberStatus } from '../../contracts/images.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import type { Role } from '../caller.ts';
import { getMember } from '../db/image-members.ts';
import { getImage, type ImageRecord } from '../db/images.ts';
import type { Queryable } from '../db/index.ts';

export interface Caller {
  role: Role;
}

/** The project a caller acts for (the default one until identity lands). */
export const callerProject = (_caller: Caller): string => DEFAULT_PROJECT_ID;

/** Whether `caller` sees `image`, given its membership of it (undefined: none). */
export function canSee(caller: Caller, image: ImageRecord, membership?: MemberStatus): boolean {
  if (caller.role === 'admin' || caller.role === 'service') return true;
  if (image.visibility === 'public' || image.visibility === 'community') return true;
  if (image.owner === callerProject(caller)) return true;
  return image.visibility === 'shared' && membership !== undefined;
}

/** Glance's admin-or-owner rule for changing an image, its data or its state. */
export function requireOwner(caller: Caller, image: ImageRecord): void {
  if (caller.role !== 'admin' && image.owner !== callerProject(caller))
    throw new ApiError('PolicyNotAuthorized', 'You do not own this image');
}

/** The image `id` names if `caller` may see it; undefined otherwise (or when absent). */
export async function visibleImage(
  db: Queryable,
  caller: Caller,
  id: string,
): Promise<ImageRecord | undefined> {
  const image = UUID.test(id) ? await getImage(db, id) : undefined;
  if (!image) return undefined;
  const member = await getMember(db, image.id, callerProject(caller));
  return canSee(caller, image, member?.status) ? image : undefined;
}
