/**
 * Retained messages (MQTT 5.0 §3.3.1.3): the last retained message per topic, saved to
 * `<dataDir>/mqtt/retained.json` so they survive restarts. An empty retained payload deletes
 * the topic's message [MQTT-3.3.1-6].
 */
import { join } from 'node:path';
import type { QoS } from 'mqtt-packet';
import { StateFile } from '../../log/index.js';
import { type BrokerMessage, propertiesFromHeaders, toHeaders } from './message.js';
import { topicMatches } from './topic.js';

interface SavedRetained {
  topic: string;
  qos: QoS;
  payload: string;
  headers: Record<string, string>;
  expiresAt?: number;
}

export class RetainedMessages {
  private readonly byTopic = new Map<string, BrokerMessage>();
  private readonly file: StateFile<SavedRetained[]>;

  private constructor(
    dir: string,
    onError: (err: unknown) => void,
    private readonly now: () => number,
  ) {
    this.file = new StateFile(join(dir, 'retained.json'), () => this.saved(), onError);
  }

  static async open(
    dir: string,
    onError: (err: unknown) => void,
    now: () => number,
  ): Promise<RetainedMessages> {
    const r = new RetainedMessages(dir, onError, now);
    const saved = (await StateFile.read(r.file.path)) as SavedRetained[] | undefined;
    for (const s of saved ?? []) {
      const properties = propertiesFromHeaders(s.headers);
      r.byTopic.set(s.topic, {
        topic: s.topic,
        qos: s.qos,
        retain: true,
        payload: Buffer.from(s.payload, 'base64'),
        properties,
        expiresAt: s.expiresAt,
      });
    }
    return r;
  }

  get size(): number {
    return this.byTopic.size;
  }

  set(message: BrokerMessage): void {
    if (message.payload.byteLength === 0) this.byTopic.delete(message.topic);
    else this.byTopic.set(message.topic, message);
    this.file.changed();
  }

  /** Unexpired retained messages whose topic matches `filter`. */
  matching(filter: string): BrokerMessage[] {
    const now = this.now();
    const out: BrokerMessage[] = [];
    for (const [topic, m] of this.byTopic) {
      if (m.expiresAt !== undefined && m.expiresAt <= now) {
        this.byTopic.delete(topic);
        this.file.changed();
        continue;
      }
      if (topicMatches(filter, topic)) out.push(m);
    }
    return out;
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  private saved(): SavedRetained[] {
    return [...this.byTopic.values()].map((m) => ({
      topic: m.topic,
      qos: m.qos,
      payload: m.payload.toString('base64'),
      headers: toHeaders(m),
      ...(m.expiresAt === undefined ? {} : { expiresAt: m.expiresAt }),
    }));
  }
}
