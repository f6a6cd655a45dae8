import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Attempt, type Batch, MessageDelivery } from '../../src/delivery/attempt.js';
import type { MessageStream } from '../../src/store/backend.js';
import type { StoredMessage } from '../../src/store/message.js';
import { FakeClock } from '../support/fake-clock.js';

const msg = (seq: number): StoredMessage => ({
  id: `x-${seq}`,
  stream: 's',
  seq,
  key: 'k',
  timestamp: 5,
  headers: { a: 'b' },
  payload: Buffer.from('hi'),
  payloadBytes: 2,
  blob: undefined,
});

const source = (open: () => Readable): MessageStream =>
  ({ name: 's', openPayload: open }) as Pick<MessageStream, 'name' | 'openPayload'> as MessageStream;

const batchOf = (n: number): Batch => ({
  stream: source(() => Readable.from([])),
  messages: Array.from({ length: n }, (_, i) => msg(i + 1)),
  probe: false,
});

describe('delivery attempt', () => {
  it('is cut short with one nack per message once the timeout passes, and aborts its signal', async () => {
    const clock = new FakeClock();
    const a = new Attempt(batchOf(3), clock, 1_000);
    expect(a.startedAt).toBe(clock.now());
    let cut: readonly unknown[] | undefined;
    void a.cutShort.then((o) => (cut = o));
    await clock.advance(999);
    expect(cut).toBeUndefined();
    await clock.advance(1);
    expect(cut).toEqual([
      { kind: 'nack', reason: 'no answer within 1000 ms' },
      { kind: 'nack', reason: 'no answer within 1000 ms' },
      { kind: 'nack', reason: 'no answer within 1000 ms' },
    ]);
    expect(a.controller.signal.aborted).toBe(true);
    expect(String(a.controller.signal.reason)).toContain('timed out after 1000 ms');
  });

  it('is cut short when aborted (shutdown)', async () => {
    const a = new Attempt(batchOf(1), new FakeClock(), 1_000);
    a.controller.abort(new Error('shutting down'));
    expect(await a.cutShort).toEqual([{ kind: 'nack', reason: 'aborted: Error: shutting down' }]);
  });

  it('end disarms the timer', async () => {
    const clock = new FakeClock();
    const a = new Attempt(batchOf(1), clock, 1_000);
    a.end();
    a.end();
    await clock.advance(10_000);
    expect(a.controller.signal.aborted).toBe(false);
  });
});

describe('message delivery', () => {
  it('carries the message and its attempt number', () => {
    const d = new MessageDelivery(batchOf(1).stream, msg(7), 3, new AbortController().signal);
    expect(d).toMatchObject({
      id: 'x-7',
      stream: 's',
      seq: 7,
      key: 'k',
      timestamp: 5,
      payloadBytes: 2,
      attempt: 3,
    });
    expect(d.headers).toEqual({ a: 'b' });
    expect(d.payload?.toString()).toBe('hi');
  });

  it('reads the payload through the source', async () => {
    const d = new MessageDelivery(
      source(() => Readable.from([Buffer.from('pay'), Buffer.from('load')])),
      msg(1),
      1,
      new AbortController().signal,
    );
    const chunks: Buffer[] = [];
    for await (const c of d.openPayload()) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('payload');
  });

  it('fails a payload read at once when the attempt ends, even while the source hangs', async () => {
    const controller = new AbortController();
    let sourceDestroyed = false;
    const hanging = new Readable({ read() {} });
    hanging.on('close', () => (sourceDestroyed = true));
    const d = new MessageDelivery(
      source(() => hanging),
      msg(1),
      1,
      controller.signal,
    );
    const payload = d.openPayload();
    const failed = new Promise<unknown>((resolve) => payload.once('error', resolve));
    controller.abort(new Error('timed out'));
    expect(await failed).toMatchObject({ name: 'AbortError' });
    await new Promise((r) => setImmediate(r));
    expect(sourceDestroyed).toBe(true);
  });
});
