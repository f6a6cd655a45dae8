/**
 * RabbitMQ (AMQP 0-9-1) through amqplib on a confirm channel: persistent messages to an exchange
 * with a routing-key template, `mandatory` so an unroutable message comes back; `ack` on the
 * broker's confirm, broker nack or a lost connection → `nack`, returned (unroutable) → `error`
 * (or `nack` with `unroutable: nack`). The connection is re-opened on the next delivery after a loss.
 */
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, nack, permanentError } from '../delivery/target.js';
import { compileTemplate, payloadBytes, redactUrl, type Template } from './template.js';
import { withTimeout } from './timeout.js';

export interface AmqpTargetOptions {
  url: string;
  /** Exchange to publish to; "" is the default exchange (routing key = queue name). */
  exchange?: string;
  /** Routing-key template. Default `{stream}`. */
  routingKey?: string;
  persistent?: boolean;
  mandatory?: boolean;
  unroutable?: 'error' | 'nack';
  timeoutMs?: number;
}

export class AmqpTarget implements Target {
  readonly type = 'amqp';
  private connection: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private opening: Promise<ConfirmChannel> | undefined;
  private readonly routingKey: Template;
  private readonly returned = new Set<string>();

  constructor(private readonly options: AmqpTargetOptions) {
    this.routingKey = compileTemplate(options.routingKey ?? '{stream}');
  }

  async start(): Promise<void> {
    await this.open().catch(() => {});
  }

  private open(): Promise<ConfirmChannel> {
    if (this.channel) return Promise.resolve(this.channel);
    this.opening ??= (async () => {
      try {
        const connection = await amqp.connect(this.options.url, {
          timeout: this.options.timeoutMs ?? 10_000,
        });
        const reset = () => {
          if (this.connection === connection) {
            this.connection = undefined;
            this.channel = undefined;
          }
        };
        connection.on('error', reset);
        connection.on('close', reset);
        const channel = await connection.createConfirmChannel();
        channel.on('error', reset);
        channel.on('close', reset);
        channel.on('return', (msg: { properties: { messageId?: string } }) => {
          if (msg.properties.messageId) this.returned.add(msg.properties.messageId);
        });
        this.connection = connection;
        this.channel = channel;
        return channel;
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    let channel: ConfirmChannel;
    try {
      channel = await this.open();
    } catch (err) {
      return batch.map(() =>
        nack(`amqp ${redactUrl(this.options.url)}: ${redactUrl((err as Error).message)}`),
      );
    }
    try {
      for (const d of batch) {
        channel.publish(this.options.exchange ?? '', this.routingKey(d), await payloadBytes(d), {
          persistent: this.options.persistent ?? true,
          mandatory: this.options.mandatory ?? true,
          messageId: d.id,
          contentType: d.headers['content-type'],
          timestamp: Math.floor(d.timestamp / 1000),
          headers: {
            ...d.headers,
            'waystation-stream': d.stream,
            'waystation-seq': d.seq,
            'waystation-key': d.key,
          },
        });
      }
      await withTimeout(
        channel.waitForConfirms(),
        this.options.timeoutMs ?? 10_000,
        `no broker confirm within ${this.options.timeoutMs ?? 10_000} ms`,
      );
    } catch (err) {
      for (const d of batch) this.returned.delete(d.id);
      // A timed-out channel may be wedged: start over on the next delivery.
      await this.connection?.close().catch(() => {});
      this.connection = undefined;
      this.channel = undefined;
      return batch.map(() => nack(`amqp: ${(err as Error).message}`));
    }
    // basic.return for a message arrives before its confirm.
    return batch.map((d) => {
      if (!this.returned.delete(d.id)) return ack;
      const reason = `amqp: unroutable: no queue bound to exchange "${this.options.exchange ?? ''}" with key "${this.routingKey(d)}"`;
      return this.options.unroutable === 'nack' ? nack(reason) : permanentError(reason);
    });
  }

  async stop(): Promise<void> {
    await this.connection?.close().catch(() => {});
  }
}
