import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../support/gateway.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const config = { streams: { dst: {} } };

function batch(lines: object[], headers: Record<string, string> = {}) {
  return gw!.app.inject({
    method: 'POST',
    url: '/v1/streams/dst/messages:batch',
    headers: { 'content-type': 'application/x-ndjson', ...headers },
    payload: lines.map((l) => `${JSON.stringify(l)}\n`).join(''),
  });
}

describe('NDJSON batches with per-line idempotencyKey and expiresAt (what waystation import sends)', () => {
  it('stores each line once under its own key, in line order, and answers the first ids again', async () => {
    ({ gw } = await startGateway(config));
    const lines = [
      { payload: 'a', key: 'k', headers: { 'X-Up': 'v' }, idempotencyKey: 'src-1' },
      { payloadBase64: 'AAH/', idempotencyKey: 'src-2' },
      { payload: 'c', idempotencyKey: 'src-3' },
    ];
    const first = await batch(lines);
    expect(first.statusCode).toBe(202);
    expect(first.json()).toMatchObject({ stored: 3, duplicates: 0, expired: 0 });
    const ids = first.json().ids as string[];
    const again = await batch(lines);
    expect(again.json()).toEqual({ ids, stored: 0, duplicates: 3, expired: 0 });
    // Overlapping batches: only the new line is stored.
    const overlap = await batch([lines[2]!, { payload: 'd', idempotencyKey: 'src-4' }]);
    expect(overlap.json()).toMatchObject({ ids: [ids[2], expect.any(String)], stored: 1, duplicates: 1 });
    const stored = await gw.ws.readMessages('dst', { fromSeq: 1 });
    expect(stored.map((m) => [m.seq, m.key, m.headers, m.payload?.toString('hex')])).toEqual([
      [1, 'k', { 'x-up': 'v' }, Buffer.from('a').toString('hex')],
      [2, undefined, {}, '0001ff'],
      [3, undefined, {}, Buffer.from('c').toString('hex')],
      [4, undefined, {}, Buffer.from('d').toString('hex')],
    ]);
    expect(stored.map((m) => m.idempotencyKey)).toEqual(['src-1', 'src-2', 'src-3', 'src-4']);
  });

  it('refuses a used key whose line differs, as Idempotency-Key does', async () => {
    ({ gw } = await startGateway(config));
    await batch([{ payload: 'a', idempotencyKey: 'src-1' }]);
    const other = await batch([{ payload: 'not a', idempotencyKey: 'src-1' }]);
    expect(other.statusCode).toBe(422);
    expect(other.json().error.code).toBe('WS_ERR_IDEMPOTENCY_KEY_REUSED');
  });

  it('stores a batch of keyed lines all or nothing, in order, a key doubled in it once', async () => {
    ({ gw } = await startGateway(config));
    const lines = Array.from({ length: 200 }, (_, i) => ({ payload: `m${i}`, idempotencyKey: `src-${i}` }));
    const res = await batch([...lines, lines[7]!]);
    expect(res.json()).toMatchObject({ stored: 200, duplicates: 1 });
    expect(res.json().ids[200]).toBe(res.json().ids[7]);
    const stored = await gw.ws.readMessages('dst', { fromSeq: 1 });
    expect(stored.map((m) => m.payload?.toString())).toEqual(lines.map((l) => l.payload));
    // A doubled key with a different line is refused before anything of the batch is stored.
    const clash = await batch([
      { payload: 'new', idempotencyKey: 'src-new' },
      { payload: 'x', idempotencyKey: 'src-dup' },
      { payload: 'y', idempotencyKey: 'src-dup' },
    ]);
    expect(clash.statusCode).toBe(422);
    expect(gw.ws.streamBounds('dst').lastSeq).toBe(200);
    expect((await batch([{ payload: 'new', idempotencyKey: 'src-new' }])).json()).toMatchObject({
      stored: 1,
    });
  });

  it('keeps the absolute expiry of each line and skips lines already expired', async () => {
    ({ gw } = await startGateway(config));
    const expiresAt = Date.now() + 3_600_000;
    const res = await batch([
      { payload: 'live', expiresAt, idempotencyKey: 'src-1' },
      { payload: 'gone', expiresAt: Date.now() - 1, idempotencyKey: 'src-2' },
      { payload: 'forever', idempotencyKey: 'src-3' },
    ]);
    expect(res.json()).toMatchObject({ stored: 2, expired: 1 });
    expect(res.json().ids[1]).toBeNull();
    const stored = await gw.ws.readMessages('dst', { fromSeq: 1 });
    expect(stored).toHaveLength(2);
    expect(Math.abs(stored[0]!.expiresAt! - expiresAt)).toBeLessThan(50);
    expect(stored[1]!.expiresAt).toBeUndefined();
    // Without per-line keys, expiresAt keeps the batch one all-or-nothing publish.
    const plain = await batch([{ payload: 'x', expiresAt }, { payload: 'y' }]);
    expect(plain.json()).toMatchObject({ stored: 2, expired: 0 });
  });

  it('refuses mixed, doubled or malformed per-line fields, storing nothing', async () => {
    ({ gw } = await startGateway(config));
    const cases: [object[], Record<string, string>, RegExp][] = [
      [[{ payload: 'a', idempotencyKey: 'k1' }, { payload: 'b' }], {}, /every line/],
      [[{ payload: 'a', idempotencyKey: 'k1' }], { 'idempotency-key': 'h' }, /one or the other/],
      [[{ payload: 'a', expiresAt: Date.now() + 1000, ttl: '5s' }], {}, /not both/],
      [[{ payload: 'a', expiresAt: 'tomorrow' }], {}, /line 1: "expiresAt"/],
      [[{ payload: 'a', idempotencyKey: '' }], {}, /line 1: "idempotencyKey"/],
    ];
    for (const [lines, headers, message] of cases) {
      const res = await batch(lines, headers);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'WS_ERR_HTTP_BAD_REQUEST',
        message: expect.stringMatching(message),
      });
    }
    expect(gw.ws.streamBounds('dst').lastSeq).toBe(0);
  });

  it('answers a batch without the new fields exactly as before', async () => {
    ({ gw } = await startGateway(config));
    const res = await batch([{ payload: 'a' }, { payload: 'b', ttl: '5s' }]);
    expect(res.statusCode).toBe(202);
    expect(Object.keys(res.json())).toEqual(['ids']);
    expect(res.json().ids).toHaveLength(2);
  });
});
