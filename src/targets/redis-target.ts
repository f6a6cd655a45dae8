/**
 * Redis Streams: one `XADD` per message (fields id, stream, seq, key, headers, timestamp,
 * payload), pipelined per batch; `ack` on each reply. While disconnected, commands fail at once
 * (no offline queue) and are `nack`s; ioredis reconnects with backoff by itself.
 */
import { Redis } from 'ioredis';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, nack, permanentError } from '../delivery/target.js';
import { compileTemplate, payloadBytes, redactUrl, type Template } from './template.js';
import { withTimeout } from './timeout.js';

export interface RedisTargetOptions {
  url: string;
  /** Stream name template. Default `{stream}`. */
  stream?: string;
  /** Approximate cap of the Redis stream (`XADD MAXLEN ~ n`). */
  maxLen?: number;
  timeoutMs?: number;
}

export class RedisTarget implements Target {
  readonly type = 'redis';
  private readonly client: Redis;
  private readonly stream: Template;

  constructor(private readonly options: RedisTargetOptions) {
    this.stream = compileTemplate(options.stream ?? '{stream}');
    this.client = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.timeoutMs ?? 10_000,
      retryStrategy: (times) => Math.min(100 * 2 ** times, 5_000),
    });
    // Connection errors surface as nacks of the deliveries; the client keeps reconnecting.
    this.client.on('error', () => {});
  }

  async start(): Promise<void> {
    await this.client.connect().catch(() => {});
  }

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    if (this.client.status !== 'ready') {
      if (this.client.status === 'end' || this.client.status === 'wait')
        this.client.connect().catch(() => {});
      return batch.map(() =>
        nack(`redis ${redactUrl(this.options.url)} is not connected (${this.client.status})`),
      );
    }
    const pipeline = this.client.pipeline();
    const { maxLen } = this.options;
    const cap = maxLen === undefined ? undefined : String(maxLen);
    for (let i = 0; i < batch.length; i++) {
      const d = batch[i]!;
      const stream = this.stream(d);
      const payload = d.payload ?? (await payloadBytes(d));
      const seq = String(d.seq);
      const headers = JSON.stringify(d.headers);
      const timestamp = String(d.timestamp);
      // Fixed argument lists (no spread): the same call shape as a hand-written pipeline.
      if (cap === undefined)
        pipeline.xadd(
          stream,
          '*',
          'id',
          d.id,
          'stream',
          d.stream,
          'seq',
          seq,
          'key',
          d.key ?? '',
          'headers',
          headers,
          'timestamp',
          timestamp,
          'payload',
          payload,
        );
      else
        pipeline.xadd(
          stream,
          'MAXLEN',
          '~',
          cap,
          '*',
          'id',
          d.id,
          'stream',
          d.stream,
          'seq',
          seq,
          'key',
          d.key ?? '',
          'headers',
          headers,
          'timestamp',
          timestamp,
          'payload',
          payload,
        );
    }
    try {
      // One deadline for the whole pipeline (a per-command timeout costs a timer per message).
      const timeoutMs = this.options.timeoutMs ?? 10_000;
      const results =
        (await withTimeout(pipeline.exec(), timeoutMs, `redis: no reply within ${timeoutMs} ms`)) ?? [];
      return batch.map((_, i) => {
        const err = results[i]?.[0];
        if (!err) return ack;
        // WRONGTYPE and friends will never succeed for this message.
        return /^(WRONGTYPE|ERR)/.test(err.message) ? permanentError(err.message) : nack(err.message);
      });
    } catch (err) {
      return batch.map(() => nack(`redis: ${(err as Error).message}`));
    }
  }

  async stop(): Promise<void> {
    this.client.disconnect();
  }
}
