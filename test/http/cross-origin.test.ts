/**
 * Without tokens (loopback only), the API must not be usable from a web page in a browser on the
 * same host: a state-changing request whose Origin is not the gateway itself is refused with 403
 * WS_ERR_HTTP_CROSS_ORIGIN and changes nothing; curl-like clients (no Origin) and same-origin
 * pages work; reads are not refused. With tokens, cross-origin pages cannot carry a Bearer
 * token anyway (the browser's preflight fails), so the check does not apply.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import { startGateway } from '../support/gateway.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function send(method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}) {
  const res = await request(`${gw!.url}${path}`, {
    method,
    headers,
    body: method === 'POST' ? 'x' : undefined,
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    body: text ? (JSON.parse(text) as { error?: { code: string } }) : undefined,
  };
}

describe('cross-origin requests without tokens', () => {
  it('refuses a mutation from another origin, stores nothing, and lets same-origin and origin-less clients through', async () => {
    ({ gw } = await startGateway({ streams: { s: {} } }));
    const own = new URL(gw.url).host;
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:1`, 'not a url']) {
      const r = await send('POST', '/v1/streams/s/messages', { origin });
      expect(r.status, origin).toBe(403);
      expect(r.body?.error?.code).toBe('WS_ERR_HTTP_CROSS_ORIGIN');
    }
    const purge = await send('POST', '/v1/streams/s/messages:batch', { origin: 'http://evil.example' });
    expect(purge.status).toBe(403);
    const streams = await send('GET', '/v1/streams/s', { origin: 'http://evil.example' });
    expect(streams.status).toBe(200);
    expect((streams.body as unknown as { messages: number }).messages).toBe(0);

    expect((await send('POST', '/v1/streams/s/messages')).status).toBe(202);
    expect((await send('POST', '/v1/streams/s/messages', { origin: `http://${own}` })).status).toBe(202);
  });

  it('does not apply with tokens: the token decides', async () => {
    const secret = 'a-long-enough-token-for-the-test-1234';
    ({ gw } = await startGateway({
      streams: { s: {} },
      auth: { tokens: [{ name: 'p', tokenHash: hashToken(secret), scopes: ['publish'], streams: ['*'] }] },
    }));
    const r = await send('POST', '/v1/streams/s/messages', {
      origin: 'http://evil.example',
      authorization: `Bearer ${secret}`,
    });
    expect(r.status).toBe(202);
    expect((await send('POST', '/v1/streams/s/messages', { origin: 'http://evil.example' })).status).toBe(
      401,
    );
  });
});
