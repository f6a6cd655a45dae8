/**
 * NATS: JetStream publish (default) with `Nats-Msg-Id` = the Waystation message id, so a
 * redelivery within the stream's duplicate window is dropped by the server; `ack` on the PubAck.
 * With `jetstream: false`, core NATS publish confirmed by a flush. The client reconnects by
 * itself; while it is disconnected deliveries are `nack`s at once.
 */
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, nack } from '../delivery/target.js';
import { compileTemplate, payloadBytes, type Template } from './template.js';
import { withTimeout } from './timeout.js';

export interface NatsTargetOptions {
  servers: string | readonly string[];
  /** Subject template. Default `{stream}`. */
  subject?: string;
  jetstream?: boolean;
  user?: string;
  pass?: string;
  token?: string;
  timeoutMs?: number;
}

export class NatsTarget implements Target {
  readonly type = 'nats';
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private connecting: Promise<void> | undefined;
  /** Tracked from the client's status events (it has no state getter). */
  private connected = false;
  private readonly subject: Template;
  private readonly timeoutMs: number;

  constructor(private readonly options: NatsTargetOptions) {
    this.subject = compileTemplate(options.subject ?? '{stream}');
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  async start(): Promise<void> {
    await this.connection().catch(() => {});
  }

  /** Connects once; after that the client reconnects by itself. */
  private connection(): Promise<void> {
    if (this.nc && !this.nc.isClosed()) return Promise.resolve();
    this.connecting ??= (async () => {
      try {
        const nc = await connect({
          servers: [
            ...(typeof this.options.servers === 'string' ? [this.options.servers] : this.options.servers),
          ],
          user: this.options.user,
          pass: this.options.pass,
          token: this.options.token,
          timeout: this.timeoutMs,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
        });
        this.nc = nc;
        this.js = jetstream(nc, { timeout: this.timeoutMs });
        this.connected = true;
        void (async () => {
          for await (const s of nc.status()) {
            if (s.type === 'disconnect') this.connected = false;
            else if (s.type === 'reconnect') this.connected = true;
          }
        })();
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    try {
      await this.connection();
    } catch (err) {
      return batch.map(() => nack(`nats: cannot connect: ${(err as Error).message}`));
    }
    const nc = this.nc!;
    if (nc.isClosed() || nc.isDraining() || !this.connected)
      return batch.map(() => nack('nats: not connected'));
    // Payloads in memory go as they are; only side-file payloads need reading first.
    const messages = batch.some((d) => d.payload === undefined)
      ? await Promise.all(batch.map(async (d) => ({ d, bytes: await payloadBytes(d) })))
      : batch.map((d) => ({ d, bytes: d.payload! }));
    if (this.options.jetstream === false) {
      try {
        for (const { d, bytes } of messages)
          nc.publish(this.subject(d), bytes, { headers: this.headersOf(d) });
        await withTimeout(nc.flush(), this.timeoutMs, `nats: flush timed out after ${this.timeoutMs} ms`);
        return batch.map(() => ack);
      } catch (err) {
        return batch.map(() => nack((err as Error).message));
      }
    }
    // JetStream keeps the order of publishes on one connection; they are pipelined.
    const settled = await Promise.allSettled(
      messages.map(({ d, bytes }) =>
        this.js!.publish(this.subject(d), bytes, {
          msgID: d.id,
          headers: this.headersOf(d),
          timeout: this.timeoutMs,
        }),
      ),
    );
    let failed: string | undefined;
    return settled.map((r) => {
      // fifo: after a failure, later acks would reorder; the route retries them after it.
      if (r.status === 'rejected') failed ??= `nats: ${(r.reason as Error).message}`;
      return failed === undefined ? ack : nack(failed);
    });
  }

  private headersOf(d: Delivery) {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(d.headers)) h.set(k, v);
    h.set('Waystation-Id', d.id);
    h.set('Waystation-Stream', d.stream);
    h.set('Waystation-Seq', String(d.seq));
    if (d.key !== undefined) h.set('Waystation-Key', d.key);
    return h;
  }

  async stop(): Promise<void> {
    await this.nc?.close().catch(() => {});
  }
}
