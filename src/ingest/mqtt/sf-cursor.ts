/**
 * Delivery of one store-and-forward topic to one connected subscriber (FairCom EDGE): reads the
 * topic's stream in order from after the last message the subscriber acknowledged, throttled
 * to `maxDeliveryRatePerSecond` while it catches up on what was stored before it (re)connected,
 * then live as messages arrive. The subscriber's position advances only over acknowledged
 * messages (PUBACK, PUBCOMP; QoS 0 once written), so a reconnect or a broker restart resumes
 * after the last acknowledged one.
 *
 * A subscriber is tracked through every one of its (non-shared) subscriptions whose filter
 * overlaps the topic's: `pick` says, per stored message, whether any of them matches its topic
 * and at which QoS and subscription identifiers. Messages none matches are not for this client:
 * the position passes them without sending (and without spending the rate).
 */
import type { QoS } from 'mqtt-packet';
import type { Clock, TimerHandle } from '../../delivery/clock.js';
import type { StoredMessage } from '../../store/message.js';
import { mqttHeaderProblem } from '../../store/mqtt-headers.js';
import type { Waystation } from '../../waystation.js';
import { type BrokerMessage, Header, propertiesFromHeaders } from './message.js';
import type { Session } from './session.js';
import { hasWildcard, topicMatches } from './topic.js';

/** A subscriber's saved position in a topic's stream. */
export interface Tracker {
  /** Highest seq such that it and everything before it was acknowledged or skipped. */
  lastAcked: number;
  qos: QoS;
  /** Messages retention removed before this subscriber got them. */
  missed: number;
  /**
   * The client's filters tracked on this topic (overlapping its filter) with their QoS, restored
   * as its subscriptions after a restart. Absent in files of versions before wildcard tracking:
   * the topic's own filter at `qos`. `qos` stays the highest of them, for those versions.
   */
  filters?: Record<string, QoS>;
}

/** How a stored message goes to this subscriber; undefined: none of its subscriptions matches. */
export interface Pick {
  qos: QoS;
  subscriptionIds: number[];
}

/** `name`: the topic the message was published to, undefined when it has none (every tracked subscription gets it). */
export type PickFn = (name: string | undefined) => Pick | undefined;

export interface CursorTopic {
  readonly filter: string;
  readonly stream: string;
  readonly ratePerSecond: number;
  trackerChanged(): void;
}

const READ_BATCH = 256;
const READ_BYTES = 4 * 1024 * 1024;

export class SfCursor {
  private nextSeq: number;
  /** Sent, not yet acknowledged, in seq order; `true` once acknowledged. */
  private readonly outstanding: { seq: number; acked: boolean }[] = [];
  private readonly horizon: number;
  private tokens: number;
  private refilledAt: number;
  private pumping = false;
  private again = false;
  private stopped = false;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly ws: Waystation,
    private readonly topic: CursorTopic,
    private readonly session: Session,
    private readonly pick: PickFn,
    readonly tracker: Tracker,
    private readonly clock: Clock,
    private readonly onError: (err: unknown) => void,
    /** Payloads above this (mqtt.maxPacketSize) are not delivered over MQTT. */
    private readonly maxPayloadBytes: number,
    /** A stored message was skipped: too large to send, or headers it cannot be sent with. */
    private readonly onSkipped: (reason: SkipReason, message: StoredMessage, why: string) => void,
  ) {
    this.nextSeq = tracker.lastAcked + 1;
    this.horizon = ws.streamBounds(topic.stream).lastSeq;
    this.tokens = Math.min(topic.ratePerSecond, 1);
    this.refilledAt = clock.now();
  }

  /** Whether the subscriber is still reading messages stored before it connected. */
  get catchingUp(): boolean {
    return this.nextSeq <= this.horizon;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** Sends what the window and the rate allow; called on connect, publish, ack and timer. */
  wake(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    this.pump()
      .catch(this.onError)
      .finally(() => {
        this.pumping = false;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async pump(): Promise<void> {
    while (!this.stopped && this.session.canSend()) {
      const { firstSeq, lastSeq } = this.ws.streamBounds(this.topic.stream);
      if (this.nextSeq < firstSeq) this.skipTo(firstSeq);
      if (this.nextSeq > lastSeq) return;
      const link = this.session.link!;
      let allowance = Math.min(READ_BATCH, link.receiveMaximum - this.session.inflightCount);
      if (this.catchingUp) {
        this.refill();
        if (this.tokens < 1) {
          const waitMs = Math.ceil(((1 - this.tokens) / this.topic.ratePerSecond) * 1000);
          this.timer?.cancel();
          this.timer = this.clock.setTimeout(() => this.wake(), waitMs);
          return;
        }
        allowance = Math.min(allowance, Math.floor(this.tokens));
      }
      const messages = await this.ws.readMessages(this.topic.stream, {
        fromSeq: this.nextSeq,
        maxMessages: Math.max(1, allowance),
        maxBytes: READ_BYTES,
      });
      if (messages.length === 0) return;
      for (const m of messages) {
        if (this.stopped || !this.session.canSend()) return;
        if (m.seq < this.nextSeq) continue;
        const how = this.pick(publishedName(this.topic.filter, m.headers[Header.topic]));
        if (!how) {
          this.pass(m.seq);
          continue;
        }
        const limit = Math.min(this.maxPayloadBytes, this.session.link!.maxPacketSize);
        // Larger than a packet may be (e.g. published over HTTP): skipped, not read into memory.
        // Headers it cannot be sent with (written by an older version, or by the store directly):
        // skipped too. Both are counted; the position passes them, never stuck on one.
        const unsendable =
          m.payloadBytes > limit
            ? { reason: 'too-large' as const, why: `${m.payloadBytes} bytes exceed ${limit}` }
            : headerSkip(m);
        if (unsendable) {
          this.skip(m, unsendable.reason, unsendable.why);
          continue;
        }
        const message = await this.toBrokerMessage(m);
        if (this.stopped || !this.session.canSend()) return;
        const qos = Math.min(how.qos, Number(m.headers[Header.qos] ?? 1)) as QoS;
        const seq = m.seq;
        if (seq <= this.horizon) this.tokens -= 1;
        this.nextSeq = seq + 1;
        const entry = { seq, acked: false };
        this.outstanding.push(entry);
        this.session.send(message, qos, how.subscriptionIds, false, () => this.acked(entry), false);
      }
    }
  }

  private skip(m: StoredMessage, reason: SkipReason, why: string): void {
    this.onSkipped(reason, m, why);
    this.pass(m.seq);
  }

  /** The position passes this message (in order behind those still in flight), nothing sent. */
  private pass(seq: number): void {
    this.nextSeq = seq + 1;
    const entry = { seq, acked: false };
    this.outstanding.push(entry);
    this.acked(entry);
  }

  private acked(entry: { seq: number; acked: boolean }): void {
    if (this.stopped) return;
    entry.acked = true;
    let advanced = false;
    while (this.outstanding.length > 0 && this.outstanding[0]!.acked) {
      this.tracker.lastAcked = this.outstanding.shift()!.seq;
      advanced = true;
    }
    if (advanced) this.topic.trackerChanged();
  }

  /** Retention removed messages this subscriber had not received. */
  private skipTo(firstSeq: number): void {
    if (this.outstanding.length === 0 && this.tracker.lastAcked < firstSeq - 1) {
      this.tracker.missed += firstSeq - 1 - this.tracker.lastAcked;
      this.tracker.lastAcked = firstSeq - 1;
      this.topic.trackerChanged();
    }
    this.nextSeq = firstSeq;
  }

  private refill(): void {
    const now = this.clock.now();
    const rate = this.topic.ratePerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
  }

  private async toBrokerMessage(m: StoredMessage): Promise<BrokerMessage> {
    let payload = m.payload;
    if (payload === undefined) {
      const chunks: Buffer[] = [];
      for await (const chunk of this.ws.openPayload(m)) chunks.push(chunk as Buffer);
      payload = Buffer.concat(chunks);
    }
    return {
      topic: deliveryTopic(this.topic.filter, m.headers[Header.topic]),
      payload,
      qos: Number(m.headers[Header.qos] ?? 1) as QoS,
      retain: false,
      properties: propertiesFromHeaders(m.headers),
      expiresAt: m.expiresAt,
    };
  }
}

export type SkipReason = 'too-large' | 'unsendable';

function headerSkip(m: StoredMessage): { reason: 'unsendable'; why: string } | undefined {
  const found = mqttHeaderProblem(m.headers);
  return found && { reason: 'unsendable', why: `header ${found.header}: ${found.problem}` };
}

/** The `mqtt-topic` header when it is a topic name the topic's filter matches, else undefined. */
export function publishedName(filter: string, published: string | undefined): string | undefined {
  return published !== undefined && !hasWildcard(published) && topicMatches(filter, published)
    ? published
    : undefined;
}

/**
 * The topic a stored message is delivered on: the one it was published to; for messages from
 * other producers (HTTP) the `mqtt-topic` header if it matches the filter, else the filter
 * itself, or its levels before the first wildcard.
 */
export function deliveryTopic(filter: string, published: string | undefined): string {
  const name = publishedName(filter, published);
  if (name !== undefined) return name;
  if (!hasWildcard(filter)) return filter;
  const literal: string[] = [];
  for (const level of filter.split('/')) {
    if (level === '+' || level === '#') break;
    literal.push(level);
  }
  return literal.length > 0 ? literal.join('/') : filter.replace(/[+#]/g, '_');
}
