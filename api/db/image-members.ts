/**
 * Image member rows: the projects a shared image is offered to and each one's answer.
 *
 * Invariants: one row per (image, member) — a second add finds the first and gets false
 * (the primary key decides, so two racing adds cannot both succeed); a status changes
 * only on a row that exists; rows go with their image (ON DELETE CASCADE, migration 10).
 */
import type { ImageMember, MemberStatus } from '../../contracts/images.ts';
import type { Db, Queryable, Row } from './index.ts';
import { resourceTime } from './neutron.ts';

interface MemberRow extends Row {
  image_id: string;
  member_id: string;
  status: string;
  created_at: string;
  updated_at: string;
}

/** Glance's member object. */
const toMember = (r: MemberRow): ImageMember => ({
  created_at: r.created_at,
  updated_at: r.updated_at,
  image_id: r.image_id,
  member_id: r.member_id,
  status: r.status as MemberStatus,
  schema: '/v2/schemas/member',
});

export async function listMembers(db: Queryable, imageId: string): Promise<ImageMember[]> {
  const rows = await db.query<MemberRow>(
    'SELECT * FROM image_members WHERE image_id = ? ORDER BY created_at, member_id',
    [imageId],
  );
  return rows.map(toMember);
}

export async function getMember(
  db: Queryable,
  imageId: string,
  memberId: string,
): Promise<ImageMember | undefined> {
  const rows = await db.query<MemberRow>(
    'SELECT * FROM image_members WHERE image_id = ? AND member_id = ?',
    [imageId, memberId],
  );
  return rows[0] && toMember(rows[0]);
}

/** Adds a pending member; false when the image already has it. */
export async function insertMember(
  db: Db,
  imageId: string,
  memberId: string,
  now: Date,
): Promise<boolean> {
  const t = resourceTime(now);
  const rows = await db.query(
    `INSERT INTO image_members (image_id, member_id, status, created_at, updated_at)
     VALUES (?, ?, 'pending', ?, ?) ON CONFLICT (image_id, member_id) DO NOTHING RETURNING image_id`,
    [imageId, memberId, t, t],
  );
  return rows.length > 0;
}

export async function countMembers(db: Queryable, imageId: string): Promise<number> {
  const rows = await db.query<{ n: unknown }>(
    'SELECT COUNT(*) AS n FROM image_members WHERE image_id = ?',
    [imageId],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Sets a member's status; false when the image has no such member. */
export async function setMemberStatus(
  db: Db,
  imageId: string,
  memberId: string,
  status: MemberStatus,
  now: Date,
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member_id = ?
     RETURNING image_id`,
    [status, resourceTime(now), imageId, memberId],
  );
  return rows.length > 0;
}

export async function deleteMember(db: Db, imageId: string, memberId: string): Promise<boolean> {
  const rows = await db.query(
    'DELETE FROM image_members WHERE image_id = ? AND member_id = ? RETURNING image_id',
    [imageId, memberId],
  );
  return rows.length > 0;
}

/** The images `memberId` is a member of, with its status on each. */
export async function membershipsOf(
  db: Queryable,
  memberId: string,
): Promise<Map<string, MemberStatus>> {
  const rows = await db.query<MemberRow>('SELECT * FROM image_members WHERE member_id = ?', [
    memberId,
  ]);
  return new Map(rows.map((r) => [r.image_id, r.status as MemberStatus]));
}
