/**
 * The fingerprint of an idempotent publish (IETF Idempotency-Key draft): a retry of the same
 * request returns the first answer, a different request under a used key is refused. It covers
 * the number of messages and each one's ordering key, headers and payload bytes; a payload
 * handed over as a stream (an HTTP body above storage.blobThreshold) is not read ahead to be
 * hashed, so it counts by its metadata only. The TTL is left out: a retry computes its expiry anew.
 */
import { createHash } from 'node:crypto';
import type { PublishInput } from './stream.js';

export function fingerprintOf(inputs: readonly PublishInput[]): string {
  const h = createHash('sha256');
  h.update(`n=${inputs.length}\n`);
  for (const input of inputs) {
    const headers = Object.entries(input.headers ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    h.update(JSON.stringify([input.key ?? null, headers]));
    if (input.payload instanceof Uint8Array) {
      h.update(`\nbytes=${input.payload.byteLength}\n`);
      h.update(input.payload);
    } else h.update('\nstream\n');
  }
  return h.digest('base64url').slice(0, 22);
}
