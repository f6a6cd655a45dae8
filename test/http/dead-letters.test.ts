/**
 * The dead-letter endpoints the dashboard uses (issue 11): sizes and first failures in the list,
 * a reason filter, one letter's payload, resubmit/delete/export of a reason or a selection; and
 * the hostile side: tokens out of reach or without the scope.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import { startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { until } from '../support/wait.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const ADMIN = 'dl-admin-token-0123456789';
const READER = 'dl-read-token-0123456789';
const OUTSIDER = 'dl-other-token-0123456789';

const config = {
  auth: {
    tokens: [
      { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin' as const] },
      { name: 'viewer', tokenHash: hashToken(READER), scopes: ['read' as const] },
      { name: 'other', tokenHash: hashToken(OUTSIDER), scopes: ['admin' as const], streams: ['other-*'] },
    ],
  },
  targets: { t: { type: 'null' as const } },
  routes: {
    r: {
      streams: ['orders'],
      target: 't',
      storeAndForward: false,
      probeInterval: '20ms',
      retry: { attempts: 2, backoff: '10ms', backoffMax: '10ms' },
    },
  },
};

interface Letter {
  id: string;
  reason: string;
  attempts: number;
  at: number;
  firstFailedAt: number;
  bytes: number;
}

/** A gateway whose route holds two `error` letters ("bad…") and one `retries-exhausted` ("slow"). */
async function withLetters(): Promise<Letter[]> {
  const target = new ScriptedTarget();
  target.behaviour = (d) => {
    const p = d.payload?.toString() ?? '';
    if (p.includes('bad')) return { kind: 'error', reason: 'rejected' };
    if (p === 'slow') return { kind: 'nack', reason: 'busy' };
    return { kind: 'ack' };
  };
  ({ gw } = await startGateway(config, { t: target }));
  for (const [payload, type] of [
    ['bad <b>one</b>', 'text/html'],
    ['{"bad":2}', 'application/json'],
    ['slow', 'text/plain'],
  ] as const)
    expect((await call('POST', '/v1/streams/orders/messages', ADMIN, payload, type)).statusCode).toBe(202);
  for (let i = 0; i < 100 && gw!.ws.route('r').deadLetters.list().length < 3; i++)
    await new Promise((r) => setTimeout(r, 20));
  return (await call('GET', '/v1/routes/r/dead-letters', ADMIN)).json().deadLetters;
}

function call(method: string, url: string, token: string, payload?: unknown, type?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (type) headers['content-type'] = type;
  return gw!.app.inject({
    method: method as 'GET',
    url,
    headers,
    payload: payload as string | object | undefined,
  });
}

describe('dead letters in the admin API', () => {
  it('lists each letter with its size and first and last failure, and filters by reason', async () => {
    const letters = await withLetters();
    expect(letters.map((l) => [l.reason, l.bytes])).toEqual([
      ['error', 14],
      ['error', 9],
      ['retries-exhausted', 4],
    ]);
    const slow = letters[2]!;
    expect(slow.attempts).toBe(2);
    expect(slow.firstFailedAt).toBeLessThanOrEqual(slow.at);
    expect(letters[0]!.firstFailedAt).toBe(letters[0]!.at);
    const errors = (await call('GET', '/v1/routes/r/dead-letters?reason=error', READER)).json().deadLetters;
    expect(errors).toHaveLength(2);
    expect((await call('GET', '/v1/routes/r/dead-letters?reason=nope', READER)).statusCode).toBe(400);
  });

  it('answers a payload whose declared type no HTTP header can carry (an MQTT 5 content type)', async () => {
    await withLetters();
    await gw!.ws.publish('orders', Buffer.from('bad €'), { headers: { 'content-type': 'text/plain; x=€' } });
    await until(() => gw!.ws.route('r').deadLetters.list().length === 4, 5000, 'the fourth letter');
    const letter = gw!.ws.route('r').deadLetters.list()[3]!;
    const url = `${gw!.url}/v1/routes/r/dead-letters/${letter.id}/payload`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${READER}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('waystation-content-type')).toBe('text/plain; x=%E2%82%AC');
    expect(await res.text()).toBe('bad €');
  });

  it("answers one letter's payload as an attachment, whole or its first bytes, never as its own type", async () => {
    const [html] = await withLetters();
    const res = await call('GET', `/v1/routes/r/dead-letters/${html!.id}/payload`, READER);
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('bad <b>one</b>');
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="r-.+\.bin"$/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['waystation-content-type']).toBe('text/html');
    expect(res.headers['waystation-payload-bytes']).toBe('14');
    const head = await call('GET', `/v1/routes/r/dead-letters/${html!.id}/payload?maxBytes=3`, READER);
    expect(head.body).toBe('bad');
    expect(head.headers['waystation-payload-bytes']).toBe('14');
    const unknown = await call('GET', '/v1/routes/r/dead-letters/nope-1/payload', READER);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('WS_ERR_DEAD_LETTER_UNKNOWN');
    expect(
      (await call('GET', `/v1/routes/r/dead-letters/${html!.id}/payload?maxBytes=0`, READER)).statusCode,
    ).toBe(400);
  });

  it('streams a payload held in a side file, whole or its first bytes', async () => {
    const target = new ScriptedTarget();
    target.behaviour = () => ({ kind: 'error', reason: 'rejected' });
    ({ gw } = await startGateway({ ...config, storage: { blobThreshold: '1KiB' } }, { t: target }));
    const big = Buffer.alloc(200 * 1024, 'abcdefgh');
    expect(
      (await call('POST', '/v1/streams/orders/messages', ADMIN, big, 'application/octet-stream')).statusCode,
    ).toBe(202);
    for (let i = 0; i < 100 && gw.ws.route('r').deadLetters.list().length < 1; i++)
      await new Promise((r) => setTimeout(r, 20));
    const [letter] = (await call('GET', '/v1/routes/r/dead-letters', READER)).json().deadLetters;
    expect(letter.bytes).toBe(big.byteLength);
    const whole = await call('GET', `/v1/routes/r/dead-letters/${letter.id}/payload`, READER);
    expect(whole.rawPayload.equals(big)).toBe(true);
    const head = await call('GET', `/v1/routes/r/dead-letters/${letter.id}/payload?maxBytes=1000`, READER);
    expect(head.rawPayload.equals(big.subarray(0, 1000))).toBe(true);
    expect(head.headers['waystation-payload-bytes']).toBe(String(big.byteLength));
  });

  it('resubmits, deletes and exports the letters of one reason or a selection', async () => {
    const letters = await withLetters();
    const exported = await call('GET', '/v1/routes/r/dead-letters/export?reason=retries-exhausted', READER);
    expect(exported.headers['waystation-export-total']).toBe('1');
    expect(JSON.parse(exported.body.trim()).deadLetter.reason).toBe('retries-exhausted');
    const selected = await call('POST', '/v1/routes/r/dead-letters/export', READER, {
      ids: [letters[0]!.id, letters[2]!.id],
    });
    expect(selected.statusCode).toBe(200);
    expect(
      selected.body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).id),
    ).toEqual([letters[0]!.id, letters[2]!.id]);
    // ids and a reason narrow each other.
    const narrowed = await call('DELETE', '/v1/routes/r/dead-letters', ADMIN, {
      ids: [letters[0]!.id, letters[2]!.id],
      reason: 'error',
    });
    expect(narrowed.json()).toEqual({ deleted: 1 });
    const resubmitted = await call('POST', '/v1/routes/r/dead-letters/resubmit', ADMIN, { reason: 'error' });
    expect(resubmitted.json()).toEqual({ resubmitted: 1 });
    const none = await call('POST', '/v1/routes/r/dead-letters/resubmit', ADMIN, { reason: 'damaged' });
    expect(none.json()).toEqual({ resubmitted: 0 });
    expect((await call('POST', '/v1/routes/r/dead-letters/resubmit', ADMIN, {})).statusCode).toBe(400);
  });

  it('refuses a token out of reach (404 as unknown) and a read-only one the actions (403)', async () => {
    const [letter] = await withLetters();
    const base = '/v1/routes/r/dead-letters';
    for (const [method, url, body] of [
      ['GET', base, undefined],
      ['GET', `${base}/${letter!.id}/payload`, undefined],
      ['GET', `${base}/export`, undefined],
      ['POST', `${base}/export`, { all: true }],
      ['POST', `${base}/resubmit`, { all: true }],
      ['DELETE', base, { all: true }],
    ] as const) {
      const res = await call(method, url, OUTSIDER, body);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().error.code).toBe('WS_ERR_ROUTE_UNKNOWN');
    }
    expect((await call('POST', `${base}/resubmit`, READER, { all: true })).statusCode).toBe(403);
    expect((await call('DELETE', base, READER, { reason: 'error' })).statusCode).toBe(403);
    expect((await call('GET', base, 'not-a-token-at-all-0000')).statusCode).toBe(401);
    expect(gw!.ws.route('r').deadLetters.list()).toHaveLength(3);
  });
});
