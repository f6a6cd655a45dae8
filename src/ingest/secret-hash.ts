/**
 * scrypt hashes of secrets (HTTP bearer tokens, MQTT passwords): only hashes are configured,
 * `waystation hash-token` prints one. Format "scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>".
 * scrypt is slow on purpose (~50 ms, 16 MiB): `verifySecretAsync` runs it on the libuv thread
 * pool, off the event loop; `verifySecret` blocks the loop and is for tools and tests.
 */
import { randomBytes, type ScryptOptions, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

const SCRYPT = { N: 16384, r: 8, p: 1 };

export function hashSecret(secret: string | Uint8Array, salt: Buffer = randomBytes(16)): string {
  const hash = scryptSync(secret, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function verifySecret(secret: string | Uint8Array, encoded: string): boolean {
  const { salt, expected, options } = parse(encoded);
  return timingSafeEqual(scryptSync(secret, salt, expected.byteLength, options), expected);
}

/** verifySecret off the event loop (on the libuv thread pool). */
export function verifySecretAsync(secret: string | Uint8Array, encoded: string): Promise<boolean> {
  const { salt, expected, options } = parse(encoded);
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, expected.byteLength, options, (err, actual) => {
      if (err) reject(err);
      else resolve(timingSafeEqual(actual, expected));
    });
  });
}

function parse(encoded: string): { salt: Buffer; expected: Buffer; options: ScryptOptions } {
  const [, n, r, p, salt, hash] = encoded.split('$');
  return {
    salt: Buffer.from(salt!, 'base64'),
    expected: Buffer.from(hash!, 'base64'),
    options: { N: Number(n), r: Number(r), p: Number(p), maxmem: 256 * 1024 * 1024 },
  };
}
