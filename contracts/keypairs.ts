/**
 * Nova's key pairs (os-keypairs) and the user data a server boots with: the request
 * shapes per microversion (nova/api/openstack/compute/schemas/keypairs.py), the name rule
 * (KeypairAPI._validate_new_key_pair), and the public key checks and fingerprints
 * (nova/crypto.py).
 *
 * Invariants: a public key is accepted only when it parses as what its type says — an
 * OpenSSH line `<type> <base64 blob> [comment]` whose blob names the same type and holds a
 * key node:crypto can load (rsa, ecdsa, ed25519; dss by its structure), or one PEM X.509
 * certificate for type x509 — so nothing else reaches the metadata service or a config
 * drive; its fingerprint is Nova's (MD5 of the blob, or SHA-1 of the certificate,
 * colon-separated lower-case hex).
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { obj, oneOf, optional, type Schema, str, ValidationError } from './schema.ts';
import { STRICT_B64 } from './server-fields.ts';
import { novaNameProblem } from './servers.ts';

export const KEYPAIR_TYPES = ['ssh', 'x509'] as const;
export type KeypairType = (typeof KEYPAIR_TYPES)[number];

/** Nova's message prefix for every key pair it refuses (exception.InvalidKeypair). */
export const invalidKeypair = (reason: string) => `Keypair data is invalid: ${reason}`;

/** Nova's parameter_types.name: 1-255 printable characters, no outer whitespace. */
const keypairName = (): Schema<string> => ({
  kind: 'string',
  parse(value, path = '') {
    if (typeof value !== 'string') throw new ValidationError(path, 'must be a string');
    if (value.length < 1 || value.length > 255)
      throw new ValidationError(path, 'must be 1 to 255 characters');
    const problem = novaNameProblem(value);
    if (problem) throw new ValidationError(path, problem);
    return value;
  },
});

/** The longest public key or certificate Kumo keeps (Nova's column is TEXT). */
export const MAX_PUBLIC_KEY = 16384;
const publicKeyText = (): Schema<string> => ({
  kind: 'string',
  parse(value, path = '') {
    if (typeof value !== 'string') throw new ValidationError(path, 'must be a string');
    if (value.length > MAX_PUBLIC_KEY)
      throw new ValidationError(path, `must be at most ${MAX_PUBLIC_KEY} characters`);
    return value;
  },
});

/** POST /os-keypairs at 2.1, 2.2-2.9 (type) and 2.10+ (type, user_id). */
export const KeypairCreate21 = obj({
  keypair: obj({ name: keypairName(), public_key: optional(publicKeyText()) }),
});
export const KeypairCreate22 = obj({
  keypair: obj({
    name: keypairName(),
    type: optional(oneOf(KEYPAIR_TYPES)),
    public_key: optional(publicKeyText()),
  }),
});
export const KeypairCreate210 = obj({
  keypair: obj({
    name: keypairName(),
    type: optional(oneOf(KEYPAIR_TYPES)),
    public_key: optional(publicKeyText()),
    user_id: optional(str({ min: 1, max: 255 })),
  }),
});
export interface KeypairRequest {
  name: string;
  type?: KeypairType;
  public_key?: string;
  user_id?: string;
}

/** Nova's safe characters of a key pair name (below 2.92): letters, digits, `_`, `-`, space. */
const SAFE_NAME = /^[A-Za-z0-9_\- ]+$/;
/** Why Nova's KeypairAPI refuses the name (its 400), or undefined. */
export function keypairNameProblem(name: string): string | undefined {
  return SAFE_NAME.test(name)
    ? undefined
    : invalidKeypair('Keypair name contains unsafe characters');
}

const colonHex = (digest: Buffer) =>
  [...digest].map((b) => b.toString(16).padStart(2, '0')).join(':');

/** Reads the SSH wire format's length-prefixed strings of a key blob (RFC 4253 6.6). */
function sshStrings(blob: Buffer): Buffer[] | undefined {
  const out: Buffer[] = [];
  let at = 0;
  while (at < blob.length) {
    if (at + 4 > blob.length) return undefined;
    const len = blob.readUInt32BE(at);
    if (at + 4 + len > blob.length) return undefined;
    out.push(blob.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

const b64url = (b: Buffer) => b.toString('base64url');
/** An mpint as an unsigned big-endian integer (no sign byte). */
const unsigned = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
};
const CURVES: Record<string, { crv: string; size: number }> = {
  nistp256: { crv: 'P-256', size: 32 },
  nistp384: { crv: 'P-384', size: 48 },
  nistp521: { crv: 'P-521', size: 66 },
};

/** The blob's fields as the JWK node:crypto loads (null: dss, checked by structure only). */
function jwkOf(type: string, parts: Buffer[]): object | null | undefined {
  const [, a, b] = parts;
  if (type === 'ssh-rsa' && parts.length === 3 && a && b)
    return { kty: 'RSA', e: b64url(unsigned(a)), n: b64url(unsigned(b)) };
  if (type === 'ssh-ed25519' && parts.length === 2 && a?.length === 32)
    return { kty: 'OKP', crv: 'Ed25519', x: b64url(a) };
  if (type === 'ssh-dss' && parts.length === 5 && parts.every((p) => p.length > 0)) return null;
  const curve = CURVES[type.replace(/^ecdsa-sha2-/, '')];
  if (!type.startsWith('ecdsa-sha2-') || !curve || parts.length !== 3 || !a || !b) return undefined;
  if (a.toString('latin1') !== type.slice('ecdsa-sha2-'.length)) return undefined;
  if (b.length !== 1 + 2 * curve.size || b[0] !== 4) return undefined;
  const x = b.subarray(1, 1 + curve.size);
  const y = b.subarray(1 + curve.size);
  return { kty: 'EC', crv: curve.crv, x: b64url(x), y: b64url(y) };
}

/** Nova's generate_fingerprint of an OpenSSH public key line, or throws its 400 reason. */
export function sshFingerprint(publicKey: string): string {
  const failed = () => new ValidationError('', invalidKeypair('failed to generate fingerprint'));
  const line = publicKey.replace(/\r?\n$/, '');
  if (/[\u0000-\u001f\u007f]/.test(line)) throw failed();
  const [type = '', data = ''] = line.split(' ');
  if (!STRICT_B64.test(data) || data === '') throw failed();
  const blob = Buffer.from(data, 'base64');
  const parts = sshStrings(blob);
  if (!parts || parts[0]?.toString('latin1') !== type) throw failed();
  const jwk = jwkOf(type, parts);
  if (jwk === undefined) throw failed();
  if (jwk !== null) {
    try {
      createPublicKey({ key: jwk as never, format: 'jwk' });
    } catch {
      throw failed();
    }
  }
  return colonHex(createHash('md5').update(blob).digest());
}

/** Nova's generate_x509_fingerprint: SHA-1 of one PEM certificate, or its 400 reason. */
export function x509Fingerprint(pem: string): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
  try {
    if (blocks.length !== 1) throw new Error('expected one PEM certificate');
    const cert = new X509Certificate(pem);
    return colonHex(Buffer.from(cert.fingerprint.replace(/:/g, ''), 'hex'));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ValidationError(
      '',
      invalidKeypair(`failed to generate X509 fingerprint. Error message: ${why}`),
    );
  }
}

/** The OpenSSH line of an RSA public key (from its JWK): `ssh-rsa <blob> <comment>`. */
export function opensshRsa(n: Buffer, e: Buffer, comment: string): string {
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const mpint = (b: Buffer) => str((b[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
  const blob = Buffer.concat([str(Buffer.from('ssh-rsa')), mpint(e), mpint(n)]);
  return `ssh-rsa ${blob.toString('base64')} ${comment}`;
}
