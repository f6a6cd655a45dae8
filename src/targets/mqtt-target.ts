/**
 * MQTT (3.1.1 or 5) through MQTT.js to a remote broker: topic template, QoS 0/1/2, retain.
 * With QoS ≥ 1 `ack` comes with PUBACK/PUBCOMP (QoS 0: once written). MQTT 5 reason codes
 * ≥ 0x80 are classified: quota exceeded, server busy and the like → `nack`; not authorized, bad
 * topic or payload format → `error` (`errorCodes`/`nackCodes` override). While disconnected,
 * deliveries are `nack`s at once; MQTT.js reconnects by itself.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, nack, permanentError } from '../delivery/target.js';
import { compileTemplate, payloadBytes, redactUrl, type Template } from './template.js';
import { withTimeout } from './timeout.js';

export interface MqttTargetOptions {
  url: string;
  /** Topic template. Default `{stream}`. */
  topic?: string;
  qos?: 0 | 1 | 2;
  retain?: boolean;
  protocolVersion?: 4 | 5;
  username?: string;
  password?: string;
  clientId?: string;
  timeoutMs?: number;
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  /** MQTT 5 reason codes forced to `error` / `nack`. */
  errorCodes?: readonly number[];
  nackCodes?: readonly number[];
}

/** Not authorized, topic name invalid, packet too large, payload format invalid, … */
const PERMANENT = new Set([0x87, 0x90, 0x95, 0x99, 0x9a]);

export class MqttTarget implements Target {
  readonly type = 'mqtt';
  private client: MqttClient | undefined;
  private readonly topic: Template;
  private readonly timeoutMs: number;

  constructor(private readonly options: MqttTargetOptions) {
    this.topic = compileTemplate(options.topic ?? '{stream}');
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  async start(): Promise<void> {
    const o = this.options;
    const clientOptions: IClientOptions = {
      protocolVersion: o.protocolVersion ?? 5,
      username: o.username,
      password: o.password,
      clientId: o.clientId,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: this.timeoutMs,
      queueQoSZero: false,
      ca: o.tls?.ca,
      cert: o.tls?.cert,
      key: o.tls?.key,
      rejectUnauthorized: o.tls?.rejectUnauthorized ?? true,
    };
    this.client = mqtt.connect(o.url, clientOptions);
    // Errors show up as nacks of deliveries; the client keeps reconnecting.
    this.client.on('error', () => {});
  }

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    const client = this.client;
    if (!client?.connected)
      return batch.map(() => nack(`mqtt ${redactUrl(this.options.url)} is not connected`));
    const qos = this.options.qos ?? 1;
    const v5 = (this.options.protocolVersion ?? 5) === 5;
    // Publishes of one batch are pipelined (MQTT keeps their order on the connection); after
    // the first failure the rest are nacked, so the route retries them in order after it.
    const settled = await Promise.allSettled(
      batch.map(async (d) =>
        withTimeout(
          client.publishAsync(this.topic(d), await payloadBytes(d), {
            qos,
            retain: this.options.retain ?? false,
            properties: v5
              ? {
                  contentType: d.headers['content-type'],
                  userProperties: {
                    ...d.headers,
                    'waystation-id': d.id,
                    'waystation-stream': d.stream,
                    'waystation-seq': String(d.seq),
                  },
                }
              : undefined,
          }),
          this.timeoutMs,
          `mqtt: no PUBACK within ${this.timeoutMs} ms`,
        ),
      ),
    );
    let failed: Outcome | undefined;
    return settled.map((r) => {
      if (failed?.kind === 'nack') return failed;
      if (r.status === 'fulfilled') return ack;
      const outcome = this.classify(r.reason as Error & { code?: number });
      if (outcome.kind === 'nack') failed = outcome;
      return outcome;
    });
  }

  private classify(err: Error & { code?: number }): Outcome {
    const code = typeof err.code === 'number' ? err.code : undefined;
    const reason = `mqtt: ${err.message}${code !== undefined ? ` (reason 0x${code.toString(16)})` : ''}`;
    if (code === undefined || this.options.nackCodes?.includes(code)) return nack(reason);
    if (this.options.errorCodes?.includes(code) || PERMANENT.has(code)) return permanentError(reason);
    return nack(reason);
  }

  async stop(): Promise<void> {
    await this.client?.endAsync().catch(() => {});
  }
}
