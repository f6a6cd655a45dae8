/**
 * scrypt hashes of secrets (HTTP bearer tokens, MQTT passwords): only hashes are configured,
 * `waystation hash-token` prints one. Format "scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>".
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

const SCRYPT = { N: 16384, r: 8, p: 1 };

export function hashSecret(secret: string | Uint8Array, salt: Buffer = randomBytes(16)): string {
  const hash = scryptSync(secret, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function verifySecret(secret: string | Uint8Array, encoded: string): boolean {
  const [, n, r, p, salt, hash] = encoded.split('$');
  const expected = Buffer.from(hash!, 'base64');
  const actual = scryptSync(secret, Buffer.from(salt!, 'base64'), expected.byteLength, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 256 * 1024 * 1024,
  });
  return timingSafeEqual(actual, expected);
}
