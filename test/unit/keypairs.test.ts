/**
 * The public key checks of contracts/keypairs.ts against real keys (ssh-keygen's RSA,
 * DSA, ECDSA of each curve and ed25519, with the MD5 fingerprints ssh-keygen prints) and
 * against forged ones: a blob naming another type, an ECDSA key claiming another curve or
 * a point off its curve, trailing bytes, non-canonical base64, a key spread over lines;
 * and opensshRsa against ssh-keygen's own spelling of a generated key.
 *
 * Invariant under test: a key is accepted exactly when it is what its type says, and its
 * fingerprint is ssh-keygen's.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { opensshRsa, sshFingerprint } from '../../contracts/keypairs.ts';
import { tempDir } from '../helpers/env.ts';
import { sshKey } from '../integration/api-keypairs-helpers.ts';

const dir = tempDir();
after(() => dir.cleanup());

const sshString = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
const line = (parts: Buffer[], type: string) =>
  `${type} ${Buffer.concat(parts.map(sshString)).toString('base64')}`;
const rejects = (key: string) =>
  assert.throws(() => sshFingerprint(key), /failed to generate fingerprint/, key.slice(0, 60));

describe('OpenSSH public keys', () => {
  test("real keys of every type: ssh-keygen's MD5 fingerprint", () => {
    const kinds: [string, number?][] = [
      ['rsa', 1024],
      ['dsa'],
      ['ecdsa', 256],
      ['ecdsa', 384],
      ['ecdsa', 521],
      ['ed25519'],
    ];
    for (const [type, bits] of kinds) {
      const k = sshKey(dir.path, `${type}${bits ?? ''}`, type, bits);
      assert.equal(sshFingerprint(k.pub), k.fingerprint, `${type} ${bits ?? ''}`);
      assert.equal(sshFingerprint(k.pub.trimEnd()), k.fingerprint, 'without the newline');
    }
  });

  test('forged and malformed keys are refused', () => {
    const ed = sshKey(dir.path, 'forge-ed', 'ed25519').pub;
    const ec = sshKey(dir.path, 'forge-ec', 'ecdsa', 256).pub;
    const [edType, edBlob] = ed.split(' ') as [string, string];
    const [, ecBlob] = ec.split(' ') as [string, string];
    rejects(`ssh-rsa ${edBlob}`);
    rejects(`${edType} ${edBlob}AAAA`);
    assert.match(ecBlob, /=$/);
    rejects(`ecdsa-sha2-nistp256 ${ecBlob.replace(/=+$/, '')}`);
    rejects(`${edType}  ${edBlob}`);
    rejects(`${edType}\n${edBlob}`);
    rejects(`${edType} ${edBlob} two\nlines`);
    rejects(`ecdsa-sha2-nistp384 ${ecBlob}`);
    rejects(line([Buffer.from('ssh-ed25519'), Buffer.alloc(31)], 'ssh-ed25519'));
    const offCurve = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]);
    rejects(
      line(
        [Buffer.from('ecdsa-sha2-nistp256'), Buffer.from('nistp256'), offCurve],
        'ecdsa-sha2-nistp256',
      ),
    );
    rejects(
      line(
        [Buffer.from('ecdsa-sha2-nistp256'), Buffer.from('nistp384'), offCurve],
        'ecdsa-sha2-nistp256',
      ),
    );
    rejects(line([Buffer.from('ssh-foo'), Buffer.alloc(8)], 'ssh-foo'));
    rejects('');
  });

  test('opensshRsa spells a key as ssh-keygen does', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const jwk = publicKey.export({ format: 'jwk' });
    const ours = opensshRsa(
      Buffer.from(jwk.n ?? '', 'base64url'),
      Buffer.from(jwk.e ?? '', 'base64url'),
      'c',
    );
    const file = join(dir.path, 'spelled.pem');
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs1' }), { mode: 0o600 });
    const theirs = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
    assert.equal(ours, `${theirs} c`);
  });
});
