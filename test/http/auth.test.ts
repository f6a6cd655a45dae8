import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import type { Gateway } from '../../src/gateway.js';
import { hashToken, TokenAuth } from '../../src/ingest/http/auth.js';
import { hashSecret } from '../../src/ingest/secret-hash.js';
import { startGateway } from '../support/gateway.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const tokens = Array.from({ length: 5 }, (_, i) => ({
  name: `t${i}`,
  secret: randomBytes(24).toString('base64url'),
}));

describe('bearer tokens', () => {
  it('checks a token in microseconds, found or not', () => {
    const auth = new TokenAuth(
      tokens.map((t) => ({ name: t.name, tokenHash: hashToken(t.secret), scopes: ['read'], streams: ['*'] })),
    );
    expect(auth.authenticate(`Bearer ${tokens[3]!.secret}`).name).toBe('t3');
    const unknown = Array.from({ length: 2000 }, () => `Bearer ${randomBytes(24).toString('base64url')}`);
    let refused = 0;
    const started = process.hrtime.bigint();
    for (const header of unknown) {
      try {
        auth.authenticate(header);
      } catch {
        refused++;
      }
    }
    const perCheckUs = Number(process.hrtime.bigint() - started) / 1000 / 2000;
    expect(refused).toBe(2000);
    // scrypt took ~50 ms per unknown token; a keyed hash over 5 tokens takes a few µs.
    expect(perCheckUs).toBeLessThan(1000);
  });

  it('refuses the slow scrypt token hashes of earlier versions with what to do', () => {
    expect(() =>
      parseConfig({ auth: { tokens: [{ name: 'old', tokenHash: hashSecret('s'), scopes: ['read'] }] } }),
    ).toThrow(/auth\.tokens\.0\.tokenHash: scrypt token hashes .* run `waystation hash-token/);
  });

  it('keeps the event loop free while requests with random tokens pour in', async () => {
    ({ gw } = await startGateway({
      auth: {
        tokens: tokens.map((t) => ({ name: t.name, tokenHash: hashToken(t.secret), scopes: ['publish'] })),
      },
      http: { listen: '127.0.0.1:0' },
    }));
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const statuses = await Promise.all(
      Array.from({ length: 200 }, () =>
        fetch(`${gw!.url}/v1/streams/events/messages`, {
          method: 'POST',
          body: 'x',
          headers: { authorization: `Bearer ${randomBytes(24).toString('base64url')}` },
        }).then((r) => r.status),
      ),
    );
    lag.disable();
    expect(new Set(statuses)).toEqual(new Set([401]));
    // With scrypt on the loop, 10 such requests held it for over a second.
    expect(lag.max / 1e6).toBeLessThan(250);
  });
});
