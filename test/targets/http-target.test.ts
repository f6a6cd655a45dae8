import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../../src/delivery/target.js';
import { HttpTarget } from '../../src/targets/index.js';
import { Receiver } from '../support/receiver.js';

function delivery(seq: number, payload: string, extra: Partial<Delivery> = {}): Delivery {
  const bytes = Buffer.from(payload);
  return {
    id: `abcdefghij-${seq}`,
    stream: 'orders',
    seq,
    key: 'cust-1',
    headers: { 'content-type': 'application/json', 'x-trace': 't1' },
    timestamp: 1_700_000_000_000,
    payloadBytes: bytes.byteLength,
    payload: bytes,
    openPayload: () => Readable.from([bytes]),
    attempt: 1,
    ...extra,
  };
}

const never = new AbortController().signal;
let receiver: Receiver;
const targets: HttpTarget[] = [];
const make = (opts: Partial<ConstructorParameters<typeof HttpTarget>[0]> = {}) => {
  const t = new HttpTarget({ url: receiver.url, ...opts });
  targets.push(t);
  return t;
};

afterEach(async () => {
  for (const t of targets.splice(0)) await t.stop();
  await receiver?.stop();
});

describe('http target', () => {
  it('POSTs each payload with the message headers, ids and an Idempotency-Key', async () => {
    receiver = await new Receiver().start();
    const outcomes = await make().deliver([delivery(7, '{"a":1}'), delivery(8, '{"b":2}')], never);
    expect(outcomes).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    const [first] = receiver.requests;
    expect(first!.method).toBe('POST');
    expect(first!.url).toBe('/in');
    expect(first!.body.toString()).toBe('{"a":1}');
    expect(first!.headers).toMatchObject({
      'content-type': 'application/json',
      'x-trace': 't1',
      'waystation-id': 'abcdefghij-7',
      'waystation-stream': 'orders',
      'waystation-seq': '7',
      'waystation-key': 'cust-1',
      'idempotency-key': 'abcdefghij-7',
    });
    expect(receiver.requests.map((r) => r.body.toString())).toEqual(['{"a":1}', '{"b":2}']);
  });

  it('delivers headers no HTTP header can carry (an MQTT 5 user property) percent-encoded, not failing forever', async () => {
    receiver = await new Receiver().start();
    const hostile = delivery(9, 'x', {
      key: 'clé-€',
      headers: {
        'content-type': 'text/plain; name=€',
        'my prop': 'a\nb',
        'transfer-encoding': 'chunked',
        connection: 'close',
        '': 'empty name',
      },
    });
    expect(await make().deliver([hostile], never)).toEqual([{ kind: 'ack' }]);
    const [req] = receiver.requests;
    expect(req!.body.toString()).toBe('x');
    expect(req!.headers).toMatchObject({
      'content-type': 'text/plain; name=%E2%82%AC',
      'my%20prop': 'a%0Ab',
      // Latin-1 goes as one byte (as before); only what HTTP cannot carry is encoded.
      'waystation-key': 'clé-%E2%82%AC',
      'waystation-encoded-headers': 'content-type,my%20prop,waystation-key',
    });
    expect(req!.headers['transfer-encoding']).toBeUndefined();
  });

  it('classifies 5xx, 408 and 429 as nack (honouring Retry-After), other 4xx as error', async () => {
    receiver = await new Receiver().start();
    const target = make();
    const answer = async (status: number, headers: Record<string, string> = {}) => {
      receiver.respond = (_r, res) => res.writeHead(status, headers).end('no');
      return (await target.deliver([delivery(1, 'x')], never))[0];
    };
    expect(await answer(503)).toMatchObject({ kind: 'nack', reason: expect.stringMatching(/HTTP 503/) });
    expect(await answer(429, { 'retry-after': '7' })).toMatchObject({ kind: 'nack', retryAfterMs: 7000 });
    expect(await answer(408)).toMatchObject({ kind: 'nack' });
    expect(await answer(400)).toMatchObject({ kind: 'error', reason: expect.stringMatching(/HTTP 400.*no/) });
    expect(await answer(204)).toEqual({ kind: 'ack' });
  });

  it('lets a target override the classification', async () => {
    receiver = await new Receiver().start();
    receiver.respond = (_r, res) => res.writeHead(404).end();
    const target = make({ classify: { nack: ['404'], error: ['5xx'] } });
    expect((await target.deliver([delivery(1, 'x')], never))[0]!.kind).toBe('nack');
    receiver.respond = (_r, res) => res.writeHead(503).end();
    expect((await target.deliver([delivery(1, 'x')], never))[0]!.kind).toBe('error');
  });

  it('nacks when the receiver is unreachable, and stops a single-mode batch at the first failure', async () => {
    receiver = await new Receiver().start();
    const port = receiver.port;
    await receiver.stop();
    const target = new HttpTarget({ url: `http://127.0.0.1:${port}/in` });
    targets.push(target);
    const outcomes = await target.deliver([delivery(1, 'x'), delivery(2, 'y')], never);
    expect(outcomes.map((o) => o.kind)).toEqual(['nack', 'nack']);
  });

  it('gives up on a slow receiver when the signal aborts', async () => {
    receiver = await new Receiver().start();
    receiver.respond = () => {};
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('attempt timed out')), 100);
    const [outcome] = await make().deliver([delivery(1, 'x')], controller.signal);
    expect(outcome!.kind).toBe('nack');
  });

  it('POSTs one NDJSON document per batch in batch mode', async () => {
    receiver = await new Receiver().start();
    const binary = delivery(2, '', { headers: {}, payload: Buffer.from([0, 255, 1]), payloadBytes: 3 });
    const outcomes = await make({ mode: 'batch' }).deliver([delivery(1, '{"a":1}'), binary], never);
    expect(outcomes).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]!.headers['content-type']).toBe('application/x-ndjson');
    const lines = receiver.requests[0]!.body.toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({
      id: 'abcdefghij-1',
      stream: 'orders',
      seq: 1,
      key: 'cust-1',
      payload: '{"a":1}',
    });
    expect(lines[1]).toMatchObject({ seq: 2, payloadBase64: Buffer.from([0, 255, 1]).toString('base64') });
  });

  it('streams a payload held in a side file', async () => {
    receiver = await new Receiver().start();
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const d = delivery(1, '', {
      payload: undefined,
      payloadBytes: big.byteLength,
      openPayload: () => Readable.from([big.subarray(0, 1e6), big.subarray(1e6)]),
    });
    expect(await make().deliver([d], never)).toEqual([{ kind: 'ack' }]);
    expect(receiver.requests[0]!.body.equals(big)).toBe(true);
  });

  it('sends basic or bearer credentials and custom headers', async () => {
    receiver = await new Receiver().start();
    await make({ auth: { type: 'bearer', token: 's3cret' }, headers: { 'x-site': 'plant-7' } }).deliver(
      [delivery(1, 'x')],
      never,
    );
    await make({ auth: { type: 'basic', username: 'u', password: 'p' } }).deliver([delivery(1, 'x')], never);
    expect(receiver.requests[0]!.headers).toMatchObject({
      authorization: 'Bearer s3cret',
      'x-site': 'plant-7',
    });
    expect(receiver.requests[1]!.headers.authorization).toBe(
      `Basic ${Buffer.from('u:p').toString('base64')}`,
    );
  });
});

describe('http target credentials', () => {
  it('never puts a password from the URL into a reason', async () => {
    const target = new HttpTarget({ url: 'http://user:s3cret@127.0.0.1:1/in' });
    const [outcome] = await target.deliver([delivery(1, 'x')], never);
    await target.stop();
    expect(outcome!.kind).toBe('nack');
    expect(JSON.stringify(outcome)).not.toContain('s3cret');
    expect(JSON.stringify(outcome)).toContain('user:***@');
  });
});
