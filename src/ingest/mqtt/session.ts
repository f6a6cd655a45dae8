/**
 * One MQTT session (a client ID's state, MQTT 5.0 §4.1): its subscriptions, the QoS 1/2
 * messages in flight to it, the messages queued while it is offline or its receive window is
 * full, and the QoS 2 packet ids it sent us that wait for PUBREL. It outlives connections when
 * the client asked for a persistent session. No sockets here: a `Link` is the connected client.
 */
import type { IPublishPacket, QoS } from 'mqtt-packet';
import type { TimerHandle } from '../../delivery/clock.js';
import type { BrokerMessage } from './message.js';
import { topicMatches } from './topic.js';

export interface Subscription {
  /** The filter as subscribed, `$share/<group>/…` included. */
  filter: string;
  /** The filter messages are matched against (without the `$share` prefix). */
  match: string;
  shareGroup: string | undefined;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | undefined;
  /**
   * Filters of the store-and-forward topics this subscription overlaps (set by the broker; `[]`
   * for a shared one): the client is tracked on each, and messages stored in them come to it
   * from their streams, not by live routing.
   */
  storeAndForward: readonly string[];
}

/** The connected client as a session sees it. */
export interface Link {
  readonly protocolVersion: 3 | 4 | 5;
  /** QoS 1/2 messages the client accepts in flight (its Receive Maximum). */
  readonly receiveMaximum: number;
  /** Largest packet the client accepts. */
  readonly maxPacketSize: number;
  /** The socket's buffer is full: stored messages wait for it to drain (live ones are written anyway). */
  readonly congested: boolean;
  /** Writes a PUBLISH; false when it exceeded the client's maximum packet size and was not sent. */
  sendPublish(packet: IPublishPacket): boolean;
}

interface Outgoing {
  packetId: number;
  packet: IPublishPacket;
  /** Waiting for PUBACK (QoS 1), PUBREC (QoS 2) or PUBCOMP (QoS 2 after PUBREL). */
  awaiting: 'puback' | 'pubrec' | 'pubcomp';
  /** Called once the client acknowledged the message (store-and-forward tracking). */
  onAck: (() => void) | undefined;
  /** Whether the session keeps it across connections (store-and-forward cursors resend instead). */
  durable: boolean;
}

/**
 * Why a message was not delivered: offline queue full, larger than the client accepts, expired,
 * (QoS 0, wills) not stored, or a stored message that cannot be sent (headers that make no
 * valid PUBLISH, e.g. `mqtt-qos: abc` written by an older version).
 */
export type DropReason = 'queue-full' | 'too-large' | 'expired' | 'not-stored' | 'unsendable';

export interface SessionCounters {
  /** `err`: why the message could not be encoded (reason `unsendable`). */
  dropped(reason: Exclude<DropReason, 'not-stored'>, err?: unknown): void;
  sent(): void;
}

const MAX_EXPIRY_S = 0xffff_ffff;

export class Session {
  readonly subscriptions = new Map<string, Subscription>();
  /** QoS 2 packet ids received whose PUBREL has not arrived [MQTT-4.3.3-9]. */
  readonly incomingQos2 = new Set<number>();
  link: Link | undefined;
  /** Topic filters whose messages are never sent to this client (its ACL's denySubscribe), set per connection. */
  deniedTopics: readonly string[] | undefined;
  /** Session Expiry Interval in ms (0 = ends with the connection). */
  expiryMs = 0;
  expiryTimer: TimerHandle | undefined;
  /** Wakes whatever else has messages for this session (store-and-forward cursors) when the window opens. */
  onWindowOpen: (() => void) | undefined;
  /**
   * For a session in the session journal: called with a journaled message's id once the session
   * is done with it (acknowledged, or dropped as MQTT allows), so it is not resent after a restart.
   */
  onJournaledDone: ((id: number) => void) | undefined;
  private readonly inflight = new Map<number, Outgoing>();
  /** In flight from an earlier connection, resent on this one as its receive window allows. */
  private resend: Outgoing[] = [];
  private resendPubrel: ((packetId: number) => void) | undefined;
  private queue: {
    message: BrokerMessage;
    qos: QoS;
    subscriptionIds: number[];
    retain: boolean;
    journalId: number | undefined;
  }[] = [];
  private queuedBytes = 0;
  private nextPacketId = 1;

  constructor(
    readonly clientId: string,
    private readonly maxQueued: number,
    private readonly counters: SessionCounters,
    private readonly now: () => number = Date.now,
    private readonly maxQueuedBytes: number = Number.POSITIVE_INFINITY,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  /** QoS 1/2 messages sent on the current connection and not yet acknowledged. */
  get inflightCount(): number {
    return this.inflight.size - this.resend.length;
  }

  /** Whether one more QoS 1/2 message may be sent now without queueing. */
  canSend(): boolean {
    const link = this.link;
    return (
      link !== undefined &&
      !link.congested &&
      this.queue.length === 0 &&
      this.resend.length === 0 &&
      this.inflightCount < link.receiveMaximum
    );
  }

  /**
   * Delivers a live message (queued while offline or the window is full, up to the message and
   * byte bounds). `journalId`: the message is in the session journal under this id.
   */
  deliver(
    message: BrokerMessage,
    qos: QoS,
    subscriptionIds: number[],
    retain: boolean,
    journalId?: number,
  ): void {
    const link = this.link;
    if (
      link &&
      !link.congested &&
      this.queue.length === 0 &&
      this.resend.length === 0 &&
      (qos === 0 || this.inflightCount < link.receiveMaximum)
    ) {
      this.send(message, qos, subscriptionIds, retain, this.journalDone(journalId), true);
      return;
    }
    const bytes = message.payload.byteLength;
    if (this.queue.length >= this.maxQueued || this.queuedBytes + bytes > this.maxQueuedBytes) {
      this.counters.dropped('queue-full');
      this.journalDone(journalId)?.();
      return;
    }
    this.queue.push({ message, qos, subscriptionIds, retain, journalId });
    this.queuedBytes += bytes;
  }

  private journalDone(journalId: number | undefined): (() => void) | undefined {
    if (journalId === undefined) return undefined;
    return () => this.onJournaledDone?.(journalId);
  }

  /**
   * Sends a message now (the caller checked canSend for QoS ≥ 1). `onAck` runs when the client
   * acknowledged it — at once for QoS 0 — or when it could not be sent at all (too large, expired).
   */
  send(
    message: BrokerMessage,
    qos: QoS,
    subscriptionIds: number[],
    retain: boolean,
    onAck: (() => void) | undefined,
    durable: boolean,
  ): void {
    const link = this.link!;
    if (this.deniedTopics?.some((f) => topicMatches(f, message.topic))) {
      // Withheld, as the client may not subscribe there: a broader subscription (say "#") does not reach it.
      onAck?.();
      return;
    }
    let expiry: number | undefined;
    if (message.expiresAt !== undefined) {
      const left = message.expiresAt - this.now();
      if (left <= 0) {
        this.counters.dropped('expired');
        onAck?.();
        return;
      }
      // A Four Byte Integer: a TTL beyond 2^32 - 1 s (136 years) is sent as the largest.
      expiry = Math.min(Math.ceil(left / 1000), MAX_EXPIRY_S);
    }
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: message.payload,
      qos,
      retain,
      dup: false,
    };
    if (link.protocolVersion === 5) {
      const properties = { ...message.properties };
      if (expiry !== undefined) properties.messageExpiryInterval = expiry;
      if (subscriptionIds.length > 0)
        properties.subscriptionIdentifier =
          subscriptionIds.length === 1 ? subscriptionIds[0]! : subscriptionIds;
      if (Object.keys(properties).length > 0) packet.properties = properties;
    }
    if (qos > 0) {
      packet.messageId = this.allocatePacketId();
      this.inflight.set(packet.messageId, {
        packetId: packet.messageId,
        packet,
        awaiting: qos === 1 ? 'puback' : 'pubrec',
        onAck,
        durable,
      });
    }
    let sent: boolean;
    try {
      sent = link.sendPublish(packet);
    } catch (err) {
      // mqtt-packet cannot encode it: not sent, and never resent (the cursor's position passes it).
      if (packet.messageId !== undefined) this.inflight.delete(packet.messageId);
      this.counters.dropped('unsendable', err);
      onAck?.();
      return;
    }
    if (!sent) {
      // [MQTT-3.1.2-25] a packet larger than the client's maximum is discarded, not sent.
      if (packet.messageId !== undefined) this.inflight.delete(packet.messageId);
      this.counters.dropped('too-large');
      onAck?.();
      return;
    }
    this.counters.sent();
    if (qos === 0) onAck?.();
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived: the message is done. */
  acknowledged(packetId: number, kind: 'puback' | 'pubcomp'): void {
    const out = this.inflight.get(packetId);
    if (!out || out.awaiting !== kind) return;
    this.forget(out);
    out.onAck?.();
    this.drain();
  }

  /** PUBREC arrived: answer PUBREL, wait for PUBCOMP. Returns false for an unknown packet id. */
  received(packetId: number): boolean {
    const out = this.inflight.get(packetId);
    if (!out || out.awaiting === 'puback') return false;
    out.awaiting = 'pubcomp';
    return true;
  }

  /** A client sent PUBREC with a failure reason code: the message ends there [MQTT-4.3.3]. */
  refused(packetId: number): void {
    const out = this.inflight.get(packetId);
    if (!out) return;
    this.forget(out);
    out.onAck?.();
    this.drain();
  }

  /**
   * A new connection for this session: resends unacknowledged PUBLISH (DUP set) and PUBREL in
   * their original order [MQTT-4.4.0-1], no more at once than its receive window allows
   * [MQTT-3.3.4-9], then what was queued.
   */
  attach(link: Link, resendPubrel: (packetId: number) => void): void {
    this.link = link;
    this.resendPubrel = resendPubrel;
    this.resend = [...this.inflight.values()];
    this.drain();
  }

  /** The connection ended: in-flight messages of store-and-forward cursors are forgotten (they resend from their own position). */
  detach(): void {
    this.link = undefined;
    // Both callbacks hold the closed connection (socket, parser, buffers), which an idle session
    // must not keep; resume() sets them again for the next connection.
    this.resendPubrel = undefined;
    this.onWindowOpen = undefined;
    this.resend = [];
    for (const [id, out] of this.inflight) if (!out.durable) this.inflight.delete(id);
  }

  /** Resends, then sends queued messages while the window allows, then lets cursors fill it. */
  drain(): void {
    const link = this.link;
    if (!link) return;
    while (this.resend.length > 0) {
      if (link.congested || this.inflightCount >= link.receiveMaximum) return;
      const out = this.resend.shift()!;
      if (out.awaiting === 'pubcomp') this.resendPubrel?.(out.packetId);
      else {
        out.packet.dup = true;
        link.sendPublish(out.packet);
      }
    }
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      // A slow reader's socket buffer is not allowed to grow without bound: wait for 'drain'.
      if (link.congested) return;
      if (next.qos > 0 && this.inflightCount >= link.receiveMaximum) return;
      this.queue.shift();
      this.queuedBytes -= next.message.payload.byteLength;
      this.send(
        next.message,
        next.qos,
        next.subscriptionIds,
        next.retain,
        this.journalDone(next.journalId),
        true,
      );
    }
    if (this.inflightCount < link.receiveMaximum) this.onWindowOpen?.();
  }

  /** Ends the session: nothing more is delivered. */
  discard(): void {
    this.queue = [];
    this.queuedBytes = 0;
    this.resend = [];
    this.inflight.clear();
    this.incomingQos2.clear();
    this.subscriptions.clear();
    this.expiryTimer?.cancel();
  }

  /** Acknowledged: out of flight, also if it was acknowledged before being resent here. */
  private forget(out: Outgoing): void {
    this.inflight.delete(out.packetId);
    if (this.resend.length > 0) this.resend = this.resend.filter((o) => o !== out);
  }

  private allocatePacketId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    throw new Error('no free packet id: 65535 messages in flight');
  }
}
