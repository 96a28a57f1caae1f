/**
 * Kumo's Keystone tokens: signed, expiring, verified with the key ring alone.
 *
 * A token is `<payload>.<mac>`, both base64url: the payload is the claims as JSON (who,
 * which project, which roles, when issued and until when, the audit ids) plus the id of
 * the key that signed it; the mac is HMAC-SHA256 of the payload's text under that key.
 *
 * Invariants: verifyToken reads no database and no file — a token is good when its key
 * is in the ring, its mac matches (compared in constant time), it has not expired and
 * it is not revoked (revocations.ts, checked by the caller); the claims carry the roles
 * as granted at issue, so a role taken away must revoke the tokens that carry it (a
 * revocation event), never wait for them to expire.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface TokenClaims {
  userId: string;
  /** The project the token is scoped to; null when unscoped. */
  projectId: string | null;
  /** Role names granted on that project, implied ones included ([] when unscoped). */
  roles: string[];
  /** Keystone's methods: ['password'], ['token'] for a rescoped token, … */
  methods: string[];
  /** Milliseconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
  /** [this token's audit id, the audit id of the token it was rescoped from (if any)]. */
  auditIds: string[];
}

export interface SigningKey {
  /** A short public name of the key: the first 8 bytes of its HMAC of "kid", hex. */
  id: string;
  secret: Buffer;
}

export interface KeyRing {
  /** The key new tokens are signed with. */
  primary(): SigningKey;
  /** Any key the ring still accepts (primary, secondaries, staged). */
  find(id: string): SigningKey | undefined;
}

export const keyId = (secret: Buffer) =>
  createHmac('sha256', secret).update('kid').digest('hex').slice(0, 16);

/** A fresh audit id, as Keystone's: 16 random bytes, base64url (22 characters). */
export const newAuditId = () => randomBytes(16).toString('base64url');

interface Payload {
  k: string;
  u: string;
  p: string | null;
  r: string[];
  m: string[];
  i: number;
  e: number;
  a: string[];
}

const mac = (secret: Buffer, text: string) => createHmac('sha256', secret).update(text).digest();

export function signToken(claims: TokenClaims, key: SigningKey): string {
  const payload: Payload = {
    k: key.id,
    u: claims.userId,
    p: claims.projectId,
    r: claims.roles,
    m: claims.methods,
    i: claims.issuedAt,
    e: claims.expiresAt,
    a: claims.auditIds,
  };
  const text = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${text}.${mac(key.secret, text).toString('base64url')}`;
}

export type Verified = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((s) => typeof s === 'string');

function claimsOf(p: Partial<Payload>): TokenClaims | undefined {
  const ok =
    typeof p.u === 'string' &&
    (p.p === null || typeof p.p === 'string') &&
    isStrings(p.r) &&
    isStrings(p.m) &&
    Number.isSafeInteger(p.i) &&
    Number.isSafeInteger(p.e) &&
    isStrings(p.a);
  if (!ok) return undefined;
  return {
    userId: p.u as string,
    projectId: p.p as string | null,
    roles: p.r as string[],
    methods: p.m as string[],
    issuedAt: p.i as number,
    expiresAt: p.e as number,
    auditIds: p.a as string[],
  };
}

const TOKEN = /^([A-Za-z0-9_-]{16,4096})\.([A-Za-z0-9_-]{43})$/;

/** The claims of a well-formed, correctly signed, unexpired token. */
export function verifyToken(token: string, ring: KeyRing, nowMs: number): Verified {
  const m = TOKEN.exec(token);
  if (!m) return { ok: false, reason: 'malformed' };
  const [, text, sig] = m as unknown as [string, string, string];
  let payload: Partial<Payload>;
  try {
    payload = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const key = typeof payload?.k === 'string' ? ring.find(payload.k) : undefined;
  if (!key) return { ok: false, reason: 'unknown key' };
  const given = Buffer.from(sig, 'base64url');
  if (!timingSafeEqual(given, mac(key.secret, text))) return { ok: false, reason: 'bad signature' };
  const claims = claimsOf(payload);
  if (!claims) return { ok: false, reason: 'malformed' };
  if (claims.expiresAt <= nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, claims };
}
