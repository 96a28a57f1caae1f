/**
 * Who may see and who may change a Glance image, one rule for every route (show, list,
 * data, members, actions) and for Nova's boot and rebuild references (server-refs.ts).
 *
 * Invariants: a caller acts for the project its token is scoped to (api/caller.ts; the
 * static kumo.conf tokens act for the default project); admins and the compute agents'
 * service token see every image; anyone else sees public and community images, its own
 * project's, and shared ones its project is a member of (any status, as Glance's
 * is_image_visible) — an image it cannot see is "not found", never "forbidden", so its
 * existence does not leak; only the owner's project or an admin changes one, else
 * Glance's 403 naming the policy rule ("You are not authorized to complete modify_image
 * action."); only an admin makes an image public (publicize_image), and only the owner
 * makes it community (communitize_image).
 */
import { ApiError } from '../../contracts/errors.ts';
import type { MemberStatus } from '../../contracts/images.ts';
import { UUID } from '../../contracts/schema.ts';
import type { Caller as Identity, Role } from '../caller.ts';
import { getMember } from '../db/image-members.ts';
import { getImage, type ImageRecord } from '../db/images.ts';
import type { Queryable } from '../db/index.ts';

/**
 * Who asks: a FastifyRequest is one (auth.ts sets both fields before any route runs); a
 * viewer without a caller (an internal admin lookup) acts for no project.
 */
export interface ImageViewer {
  role: Role;
  caller?: Pick<Identity, 'projectId'>;
}

/** The Glance policy rules a refusal names. */
export type ImageRule =
  | 'modify_image'
  | 'delete_image'
  | 'upload_image'
  | 'download_image'
  | 'publicize_image'
  | 'communitize_image';

export const notAuthorized = (rule: string) =>
  new ApiError('PolicyNotAuthorized', `You are not authorized to complete ${rule} action.`);

/** The project the viewer acts for (null: a token scoped to none). */
export const viewerProject = (v: ImageViewer): string | null => v.caller?.projectId ?? null;

/** Whether the viewer's project owns `image` (admins own every image). */
export const ownsImage = (v: ImageViewer, image: ImageRecord): boolean =>
  v.role === 'admin' || viewerProject(v) === image.owner;

/** Whether `viewer` sees `image`, given its project's membership of it (undefined: none). */
export function canSee(v: ImageViewer, image: ImageRecord, membership?: MemberStatus): boolean {
  if (v.role === 'admin' || v.role === 'service') return true;
  if (image.visibility === 'public' || image.visibility === 'community') return true;
  if (ownsImage(v, image)) return true;
  return image.visibility === 'shared' && membership !== undefined;
}

/** Glance's admin-or-owner rule for changing an image, its data or its members. */
export function requireOwner(v: ImageViewer, image: ImageRecord, rule: ImageRule): void {
  if (!ownsImage(v, image)) throw notAuthorized(rule);
}

/**
 * Glance's visibility rules, on create and PATCH: `public` is an admin's
 * (publicize_image), `community` the owner project's (communitize_image).
 */
export function requireVisibility(v: ImageViewer, owner: string, visibility: string): void {
  if (visibility === 'public' && v.role !== 'admin') throw notAuthorized('publicize_image');
  if (visibility === 'community' && v.role !== 'admin' && owner !== viewerProject(v))
    throw notAuthorized('communitize_image');
}

/** Glance's download_image: a reader sees an image but downloads nothing. */
export function requireDownloader(v: ImageViewer): void {
  if (v.role === 'reader') throw notAuthorized('download_image');
}

/** The image `id` names if `viewer` may see it; undefined otherwise (or when absent). */
export async function visibleImage(
  db: Queryable,
  v: ImageViewer,
  id: string,
): Promise<ImageRecord | undefined> {
  const image = UUID.test(id) ? await getImage(db, id) : undefined;
  if (!image) return undefined;
  const project = viewerProject(v);
  const member = project === null ? undefined : await getMember(db, image.id, project);
  return canSee(v, image, member?.status) ? image : undefined;
}
