/**
 * The broker's session logic (SPEC §4), apart from sockets: sessions by client ID and their
 * takeover and expiry, routing of live messages to subscriptions (shared ones round-robin),
 * retained messages, wills, and store-and-forward topics — a publish to one is answered only
 * once its stream holds it durably, and its subscribers are served by cursors over the stream.
 * Persistent sessions (a session expiry) are kept in the session journal: their subscriptions,
 * and the QoS 1/2 messages routed to them, journaled before the publisher is answered.
 */
import { join } from 'node:path';
import type { QoS } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { StoreAndForwardTopicInput, WaystationConfig } from '../../config/schema.js';
import { type Clock, systemClock, type TimerHandle } from '../../delivery/clock.js';
import { RouteFullError, StorageFullError } from '../../errors.js';
import type { BatchMessage, Waystation } from '../../waystation.js';
import { type BrokerMessage, toHeaders } from './message.js';
import { RetainedMessages } from './retained.js';
import { type DropReason, Session, type Subscription } from './session.js';
import {
  type JournaledDelivery,
  type SavedSession,
  type SavedSubscription,
  SessionJournal,
} from './session-journal.js';
import { type Pick, type PickFn, SfCursor } from './sf-cursor.js';
import { type SfTopic, StoreAndForwardTopics, type TopicInfo } from './sf-topics.js';
import { type SharedGroup, SubscriptionIndex } from './subscription-index.js';
import { filtersOverlap, parseShared, topicMatches } from './topic.js';

export type MqttConfig = NonNullable<WaystationConfig['mqtt']>;

/** Reason codes (MQTT 5.0 §2.4) the broker answers with. */
export const Reason = {
  success: 0x00,
  noMatchingSubscribers: 0x10,
  noSubscriptionExisted: 0x11,
  unspecified: 0x80,
  malformed: 0x81,
  protocolError: 0x82,
  implementationSpecific: 0x83,
  unsupportedProtocolVersion: 0x84,
  clientIdNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverBusy: 0x89,
  badAuthenticationMethod: 0x8c,
  serverUnavailable: 0x88,
  serverShuttingDown: 0x8b,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicFilterInvalid: 0x8f,
  topicNameInvalid: 0x90,
  packetIdInUse: 0x91,
  packetIdNotFound: 0x92,
  receiveMaximumExceeded: 0x93,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
  sharedSubscriptionsNotSupported: 0x9e,
} as const;

/** What a connection hands the broker. */
export interface ClientConnection {
  readonly link: Session['link'] & object;
  /** Ends the connection (MQTT 5: after a DISCONNECT with this reason code). */
  close(reasonCode: number): void;
  sendPubrel(packetId: number): void;
}

interface Will {
  message: BrokerMessage;
  /** The will's Message Expiry Interval, counted from when it is published. */
  expiryMs: number | undefined;
  delayMs: number;
  publisher: string;
}

export interface BrokerStats {
  connections: number;
  sessions: number;
  /** Subscriptions of every session, connected or not (the subscription index's size). */
  subscriptions: number;
  retained: number;
  received: number;
  sent: number;
  dropped: Record<DropReason, number>;
}

const RETENTION_CHECK_MS = 60_000;
const RESOLVED: Promise<void> = Promise.resolve();
/** Bounds of one batched append (well below the log's 1 GiB per append). */
const BATCH_MESSAGES = 1000;
const BATCH_BYTES = 8 * 1024 * 1024;
/** Segments of the session journal: small, so compaction frees space soon. */
const JOURNAL_SEGMENT_BYTES = 8 * 1024 * 1024;

interface PendingBatch {
  messages: BatchMessage[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  bytes: number;
}

export class Broker {
  private readonly sessions = new Map<string, Session>();
  private readonly connections = new Map<Session, ClientConnection>();
  private readonly cursors = new Map<Session, Map<string, SfCursor>>();
  private readonly wills = new Map<string, { will: Will; timer: TimerHandle | undefined }>();
  /** Every session's subscriptions by filter level, for live routing. */
  private readonly index = new SubscriptionIndex();
  private readonly batches = new Map<string, PendingBatch>();
  private flushScheduled = false;
  private readonly counters: BrokerStats['dropped'] = {
    'queue-full': 0,
    'too-large': 0,
    expired: 0,
    'not-stored': 0,
    unsendable: 0,
  };
  private received = 0;
  private sent = 0;
  private retentionTimer: TimerHandle | undefined;
  private closed = false;
  private readonly unsubscribePublished: () => void;

  private constructor(
    private readonly ws: Waystation,
    readonly config: MqttConfig,
    private readonly retained: RetainedMessages,
    readonly topics: StoreAndForwardTopics,
    private readonly journal: SessionJournal,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.unsubscribePublished = ws.onPublished((stream) => topics.forStream(stream)?.onMessages?.());
    for (const t of topics.list()) this.watch(t);
    this.scheduleRetention();
  }

  static async open(
    ws: Waystation,
    config: MqttConfig,
    logger: Logger,
    clock: Clock = systemClock,
  ): Promise<Broker> {
    const dir = join(ws.dataDir, 'mqtt');
    const onError = (err: unknown) =>
      logger.error({ err }, 'mqtt broker: saving state failed; it is retried');
    const retained = await RetainedMessages.open(dir, onError, () => clock.now());
    const topics = await StoreAndForwardTopics.open(ws, dir, config.storeAndForwardTopics, clock, onError);
    await topics.refreshRetention();
    const { journal, sessions } = await SessionJournal.open(
      join(dir, 'sessions'),
      { ...ws.localLogOptions, segmentBytes: JOURNAL_SEGMENT_BYTES },
      onError,
    );
    const broker = new Broker(ws, config, retained, topics, journal, logger, clock);
    broker.restoreSessions(sessions);
    return broker;
  }

  /** After a restart: the journaled sessions again, offline, with what they were owed; expired ones end. */
  private restoreSessions(saved: readonly SavedSession[]): void {
    const now = this.clock.now();
    for (const s of saved) {
      // Connected when the broker stopped: the expiry counts from now.
      const since = s.disconnectedAt ?? now;
      const left = s.expiryMs - (now - since);
      if (left <= 0) {
        this.journal.ended(s.clientId);
        continue;
      }
      if (s.disconnectedAt === undefined) this.journal.disconnected(s.clientId, now, s.expiryMs);
      const session = this.newSession(s.clientId);
      session.expiryMs = s.expiryMs;
      session.onJournaledDone = (id) => this.journal.done(s.clientId, id);
      this.sessions.set(s.clientId, session);
      const topics = new Set<SfTopic>();
      for (const saved of s.subscriptions) {
        const sub = this.subscriptionFrom(saved);
        session.subscriptions.set(sub.filter, sub);
        this.index.add(session, sub);
        for (const f of sub.storeAndForward) {
          const t = this.topics.get(f);
          if (t) topics.add(t);
        }
      }
      for (const t of topics) this.track(session, t);
      for (const m of s.messages) session.deliver(m.message, m.qos, m.subscriptionIds, m.retain, m.id);
      this.scheduleExpiry(session, left);
    }
  }

  private subscriptionFrom(saved: SavedSubscription): Subscription {
    // Journaled as accepted, so well-formed.
    const shared = parseShared(saved.filter);
    const sub: Subscription = {
      ...saved,
      match: shared?.filter ?? saved.filter,
      shareGroup: shared?.group,
      storeAndForward: [],
    };
    if (sub.shareGroup === undefined)
      sub.storeAndForward = this.topics.overlapping(sub.match).map((t) => t.filter);
    return sub;
  }

  /** Keeps the journal's copy of a persistent session's subscriptions and expiry current. */
  private journalSession(session: Session): void {
    if (session.expiryMs <= 0) {
      this.journal.ended(session.clientId);
      session.onJournaledDone = undefined;
      return;
    }
    const subs: SavedSubscription[] = [...session.subscriptions.values()].map((s) => ({
      filter: s.filter,
      qos: s.qos,
      noLocal: s.noLocal,
      retainAsPublished: s.retainAsPublished,
      retainHandling: s.retainHandling,
      subscriptionId: s.subscriptionId,
    }));
    this.journal.saveSession(session.clientId, session.expiryMs, subs);
    session.onJournaledDone = (id) => this.journal.done(session.clientId, id);
  }

  stats(): BrokerStats {
    return {
      connections: this.connections.size,
      sessions: this.sessions.size,
      subscriptions: this.index.size,
      retained: this.retained.size,
      received: this.received,
      sent: this.sent,
      dropped: { ...this.counters },
    };
  }

  // --- sessions ---------------------------------------------------------------------------

  /**
   * A client connected (CONNECT accepted): takes over or starts its session and settles the
   * previous connection's will. Returns whether a session was present; resume() follows the CONNACK.
   */
  connect(
    clientId: string,
    conn: ClientConnection,
    options: { cleanStart: boolean; expiryMs: number; will: Will | undefined },
  ): { session: Session; sessionPresent: boolean } {
    const previous = this.sessions.get(clientId);
    if (previous) {
      const old = this.connections.get(previous);
      if (old) {
        this.connections.delete(previous);
        this.stopCursors(previous);
        previous.detach();
        old.close(Reason.sessionTakenOver);
      }
    }
    const pendingWill = this.wills.get(clientId);
    if (pendingWill) {
      pendingWill.timer?.cancel();
      // The previous connection is closed (taken over [MQTT-3.1.4-3], or lost before): its will is
      // published when due at once (Will Delay 0) or when its session ends now (Session Expiry 0,
      // or this Clean Start) [MQTT-3.1.2-8]; else this connection came within the delay and it is
      // not [MQTT-3.1.3-9]. (A lost connection's will with delay 0 or expiry 0 was published already.)
      if (pendingWill.will.delayMs <= 0 || previous?.expiryMs === 0 || options.cleanStart)
        this.fireWill(clientId);
      else this.wills.delete(clientId);
    }
    let session = previous;
    let sessionPresent = session !== undefined && !options.cleanStart;
    if (session && options.cleanStart) {
      this.index.removeSession(session);
      session.discard();
      this.journal.ended(clientId);
      session = undefined;
    }
    if (!session) {
      session = this.newSession(clientId);
      this.sessions.set(clientId, session);
      // After a restart only store-and-forward subscriptions are known (saved with their positions).
      if (!options.cleanStart) sessionPresent = this.restoreSfSubscriptions(session) || sessionPresent;
    }
    session.expiryTimer?.cancel();
    session.expiryTimer = undefined;
    session.expiryMs = options.expiryMs;
    this.journalSession(session);
    this.connections.set(session, conn);
    if (options.will) this.wills.set(clientId, { will: options.will, timer: undefined });
    return { session, sessionPresent };
  }

  /** After CONNACK: resends what was in flight, sends what was queued, starts store-and-forward cursors. */
  resume(session: Session, conn: ClientConnection): void {
    if (this.connections.get(session) !== conn) return;
    session.onWindowOpen = () => {
      for (const c of this.cursors.get(session)?.values() ?? []) c.wake();
    };
    session.attach(conn.link, (id) => conn.sendPubrel(id));
    const tracked = new Set<string>();
    for (const sub of session.subscriptions.values()) for (const f of sub.storeAndForward) tracked.add(f);
    for (const f of tracked) {
      const t = this.topics.get(f);
      if (t) this.startCursor(session, t);
    }
  }

  /**
   * The connection ended. `publishWill` is false after a DISCONNECT with reason 0 [MQTT-3.1.2-10];
   * the session lives on for its expiry interval.
   */
  disconnected(session: Session, conn: ClientConnection, publishWill: boolean): void {
    if (this.connections.get(session) !== conn) return; // taken over already
    this.connections.delete(session);
    this.stopCursors(session);
    session.detach();
    const pending = this.wills.get(session.clientId);
    if (pending && !publishWill) this.wills.delete(session.clientId);
    if (pending && publishWill) {
      const delay = Math.min(pending.will.delayMs, session.expiryMs);
      if (delay <= 0) this.fireWill(session.clientId);
      else if (!this.closed)
        pending.timer = this.clock.setTimeout(() => this.fireWill(session.clientId), delay);
    }
    // Closed: close() journaled the disconnect; no will or expiry timer may outlive the broker.
    if (this.closed) return;
    if (session.expiryMs <= 0) this.endSession(session);
    else {
      // The expiry may have changed on DISCONNECT (MQTT 5).
      if (this.journal.has(session.clientId))
        this.journal.disconnected(session.clientId, this.clock.now(), session.expiryMs);
      this.scheduleExpiry(session, session.expiryMs);
    }
  }

  private newSession(clientId: string): Session {
    return new Session(
      clientId,
      this.config.maxQueuedMessages,
      {
        dropped: (reason, err) => {
          this.counters[reason]++;
          if (err !== undefined)
            this.logger.warn({ err, clientId }, 'mqtt: a message could not be encoded; not sent');
        },
        sent: () => this.sent++,
      },
      () => this.clock.now(),
      this.config.maxQueuedBytes,
    );
  }

  private scheduleExpiry(session: Session, ms: number): void {
    // The clock's timers wait out delays past 24.8 days (a session expiry of up to 136 years).
    session.expiryTimer = this.clock.setTimeout(() => this.endSession(session), ms);
  }

  private endSession(session: Session): void {
    if (this.sessions.get(session.clientId) !== session || this.connections.has(session)) return;
    this.sessions.delete(session.clientId);
    this.index.removeSession(session);
    session.discard();
    this.journal.ended(session.clientId);
    if (this.wills.has(session.clientId)) this.fireWill(session.clientId);
  }

  private fireWill(clientId: string): void {
    const pending = this.wills.get(clientId);
    if (!pending) return;
    this.wills.delete(clientId);
    const { message, expiryMs } = pending.will;
    if (expiryMs !== undefined) message.expiresAt = this.clock.now() + expiryMs;
    this.publishUnanswered(message, pending.will.publisher);
  }

  // --- publish ----------------------------------------------------------------------------

  /**
   * Routes a message: stored in every matching store-and-forward topic's stream (resolves once
   * durable; throws StorageFullError / RouteFullError when refused), then to live subscribers
   * and the retained store.
   */
  publish(message: BrokerMessage, publisher: string, idempotencyKey?: string): Promise<void> {
    // A promise chain rather than an async function with two awaits: this runs for every
    // publish, and each await allocated a promise the collector then had to find.
    try {
      this.received++;
      const sfTopics = this.topics.matching(message.topic);
      if (sfTopics.length === 0) return this.afterStored(message, publisher, sfTopics);
      const stored: BatchMessage = {
        payload: message.payload,
        headers: toHeaders(message),
        ttl: message.expiresAt === undefined ? undefined : Math.max(1, message.expiresAt - this.clock.now()),
      };
      const storing =
        sfTopics.length === 1
          ? this.store(sfTopics[0]!.stream, stored, idempotencyKey)
          : Promise.all(sfTopics.map((t) => this.store(t.stream, stored, idempotencyKey)));
      return storing.then(() => this.afterStored(message, publisher, sfTopics));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Once stored: the retained store, then live subscribers. */
  private afterStored(
    message: BrokerMessage,
    publisher: string,
    sfTopics: readonly SfTopic[],
  ): Promise<void> {
    if (message.retain) this.retained.set(message);
    // Copies for persistent sessions are journaled before the publisher is answered.
    return this.route(message, publisher, sfTopics) ?? RESOLVED;
  }

  /** A publish nobody can be told about (QoS 0, a will): failing to store it is logged and counted. */
  publishUnanswered(message: BrokerMessage, publisher: string): void {
    this.publish(message, publisher).catch((err: unknown) => {
      this.counters['not-stored']++;
      this.logger.warn({ err, publisher, topic: message.topic }, 'mqtt: message not stored');
    });
  }

  /**
   * Appends to a topic's stream. Publishes that arrive together (one read from the sockets,
   * before the next tick) go to the log as one batch — one append and one commit wait instead
   * of one each. A batch is stored all or nothing; a refusal fails each of its publishes, so
   * none is acknowledged unless stored. A publish with an idempotency key is appended alone.
   */
  private store(stream: string, message: BatchMessage, idempotencyKey: string | undefined): Promise<void> {
    if (idempotencyKey !== undefined)
      return this.ws.publishBatch(stream, [message], { idempotencyKey }).then(() => undefined);
    const bytes = (message.payload as Buffer).byteLength;
    return new Promise((resolve, reject) => {
      let batch = this.batches.get(stream);
      if (batch && (batch.messages.length >= BATCH_MESSAGES || batch.bytes + bytes > BATCH_BYTES)) {
        this.batches.delete(stream);
        this.append(stream, batch);
        batch = undefined;
      }
      if (!batch) {
        batch = { messages: [], waiters: [], bytes: 0 };
        this.batches.set(stream, batch);
        if (!this.flushScheduled) {
          this.flushScheduled = true;
          process.nextTick(() => this.flushBatches());
        }
      }
      batch.messages.push(message);
      batch.waiters.push({ resolve, reject });
      batch.bytes += bytes;
    });
  }

  private flushBatches(): void {
    this.flushScheduled = false;
    for (const [stream, batch] of this.batches) this.append(stream, batch);
    this.batches.clear();
  }

  private append(stream: string, { messages, waiters }: PendingBatch): void {
    this.ws.publishBatch(stream, messages).then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }

  /**
   * Live delivery to matching subscriptions, found in the subscription index (the cost follows
   * the topic's levels and the matches, not the number of sessions). A message stored in a
   * store-and-forward topic goes to the sessions tracked on it from the stream, so not a second
   * time here: a non-shared subscription matching its topic overlaps that store-and-forward
   * topic, hence is tracked on it (its cached `storeAndForward` is not empty). Shared
   * subscriptions are live only.
   */
  private route(
    message: BrokerMessage,
    publisher: string,
    stored: readonly SfTopic[],
  ): Promise<void> | undefined {
    // Allocated on the first match only: most publishes into a store-and-forward topic match no
    // live subscription, and this runs for every one of them.
    let best: Map<Session, { qos: QoS; ids: number[]; retain: boolean }> | undefined;
    let groups: SharedGroup[] | undefined;
    const isStored = stored.length > 0;
    this.index.match(message.topic, {
      subscriber: (session, sub) => {
        if (isStored && sub.storeAndForward.length > 0) return;
        if (sub.noLocal && session.clientId === publisher) return;
        // Overlapping subscriptions: one copy at the highest QoS, all identifiers [MQTT-3.3.4-2].
        const qos = Math.min(sub.qos, message.qos) as QoS;
        const retain = sub.retainAsPublished && message.retain;
        best ??= new Map();
        const b = best.get(session);
        if (!b)
          best.set(session, {
            qos,
            ids: sub.subscriptionId === undefined ? [] : [sub.subscriptionId],
            retain,
          });
        else {
          b.qos = Math.max(b.qos, qos) as QoS;
          b.retain ||= retain;
          if (sub.subscriptionId !== undefined) b.ids.push(sub.subscriptionId);
        }
      },
      group: (group) => {
        groups ??= [];
        groups.push(group);
      },
    });
    if (best === undefined && groups === undefined) return undefined;
    const targets: { session: Session; delivery: JournaledDelivery }[] = [];
    for (const [session, b] of best ?? [])
      targets.push({
        session,
        delivery: { clientId: session.clientId, qos: b.qos, subscriptionIds: b.ids, retain: b.retain },
      });
    for (const group of groups ?? []) {
      // Round-robin, preferring connected members [MQTT 5.0 §4.8.2].
      const members = [...group.members];
      const connected = members.filter(([session]) => session.link !== undefined);
      const pool = connected.length > 0 ? connected : members;
      const [session, sub] = pool[group.turn++ % pool.length]!;
      const ids = sub.subscriptionId === undefined ? [] : [sub.subscriptionId];
      targets.push({
        session,
        delivery: {
          clientId: session.clientId,
          qos: Math.min(sub.qos, message.qos) as QoS,
          subscriptionIds: ids,
          retain: false,
        },
      });
    }
    const journaled = targets.filter((t) => t.delivery.qos > 0 && this.journal.has(t.session.clientId));
    const entry =
      journaled.length > 0
        ? this.journal.addMessage(
            message,
            journaled.map((t) => t.delivery),
          )
        : undefined;
    for (const { session, delivery: d } of targets) {
      const id = entry && d.qos > 0 && this.journal.has(session.clientId) ? entry.id : undefined;
      session.deliver(message, d.qos, d.subscriptionIds, d.retain, id);
    }
    return entry?.durable;
  }

  // --- subscriptions ----------------------------------------------------------------------

  /** Adds or replaces a subscription; sends retained messages per its retain handling. */
  subscribe(session: Session, sub: Subscription): void {
    const old = session.subscriptions.get(sub.filter);
    const existed = old !== undefined;
    // Every store-and-forward topic the filter overlaps tracks the client (shared ones: none).
    const sfTopics = sub.shareGroup === undefined ? this.topics.overlapping(sub.match) : [];
    sub.storeAndForward = sfTopics.map((t) => t.filter);
    // A repeated SUBSCRIBE replaces the options in place: a running cursor keeps its position
    // and what it has in flight (clients resubscribe on every reconnect).
    const current = old ? Object.assign(old, sub) : sub;
    session.subscriptions.set(sub.filter, current);
    // Same filter, same path in the index: a replaced subscription is already there (updated in place).
    if (!old) this.index.add(session, current);
    for (const t of sfTopics) this.track(session, t);
    if (this.journal.has(session.clientId)) this.journalSession(session);
    // Retained messages: rh 0 always, 1 only for a new subscription, 2 never; not for shared ones.
    if (sub.shareGroup !== undefined || sub.retainHandling === 2 || (sub.retainHandling === 1 && existed))
      return;
    for (const m of this.retained.matching(sub.match)) {
      const ids = sub.subscriptionId === undefined ? [] : [sub.subscriptionId];
      session.deliver(m, Math.min(sub.qos, m.qos) as QoS, ids, true);
    }
  }

  /**
   * Returns whether the subscription existed. Unsubscribing the last of a client's filters that
   * overlap a store-and-forward topic ends its tracking there (its position is dropped).
   */
  unsubscribe(session: Session, filter: string): boolean {
    const sub = session.subscriptions.get(filter);
    if (!sub) return false;
    session.subscriptions.delete(filter);
    this.index.remove(session, sub);
    if (this.journal.has(session.clientId)) this.journalSession(session);
    for (const f of sub.storeAndForward) {
      const t = this.topics.get(f);
      if (t) this.track(session, t);
    }
    return true;
  }

  /**
   * Brings the client's tracking on `t` in line with its subscriptions that overlap it: a new
   * subscriber starts per the topic's new-subscriber options, a known one keeps its position
   * (its filters and QoS are updated); with none left, tracking ends and the position is dropped.
   */
  private track(session: Session, t: SfTopic): void {
    const filters: Record<string, QoS> = {};
    let qos: QoS | undefined;
    for (const s of session.subscriptions.values()) {
      if (!s.storeAndForward.includes(t.filter)) continue;
      filters[s.filter] = s.qos;
      qos = Math.max(qos ?? 0, s.qos) as QoS;
    }
    const tracker = t.trackers.get(session.clientId);
    if (qos === undefined) {
      const mine = this.cursors.get(session);
      mine?.get(t.filter)?.stop();
      mine?.delete(t.filter);
      if (tracker) {
        t.trackers.delete(session.clientId);
        t.trackerChanged();
      }
      return;
    }
    if (tracker) {
      tracker.qos = qos;
      tracker.filters = filters;
    } else {
      t.trackers.set(session.clientId, {
        lastAcked: t.startFor(this.ws.streamBounds(t.stream)),
        qos,
        missed: 0,
        filters,
      });
    }
    t.trackerChanged();
    if (session.link && !this.cursors.get(session)?.has(t.filter)) this.startCursor(session, t);
  }

  /** After a restart: the filters the client was tracked through become its subscriptions again. */
  private restoreSfSubscriptions(session: Session): boolean {
    const restored: Subscription[] = [];
    for (const t of this.topics.list()) {
      const tracker = t.trackers.get(session.clientId);
      for (const [filter, qos] of Object.entries(tracker?.filters ?? {})) {
        const known = session.subscriptions.get(filter);
        if (known) {
          known.qos = Math.max(known.qos, qos) as QoS;
          continue;
        }
        const sub: Subscription = {
          filter,
          match: filter,
          shareGroup: undefined,
          qos,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 2,
          subscriptionId: undefined,
          storeAndForward: [],
        };
        session.subscriptions.set(filter, sub);
        this.index.add(session, sub);
        restored.push(sub);
      }
    }
    const topics = new Set<SfTopic>();
    for (const sub of restored) {
      const overlapping = this.topics.overlapping(sub.match);
      sub.storeAndForward = overlapping.map((t) => t.filter);
      for (const t of overlapping) topics.add(t);
    }
    for (const t of topics) this.track(session, t);
    return restored.length > 0;
  }

  /** Which of the session's subscriptions a message of `t` goes to: QoS the highest, all identifiers [MQTT-3.3.4-2]. */
  private pickFor(session: Session, t: SfTopic): PickFn {
    return (name) => {
      let pick: Pick | undefined;
      for (const s of session.subscriptions.values()) {
        if (!s.storeAndForward.includes(t.filter)) continue;
        if (name !== undefined && !topicMatches(s.match, name)) continue;
        pick ??= { qos: s.qos, subscriptionIds: [] };
        pick.qos = Math.max(pick.qos, s.qos) as QoS;
        if (s.subscriptionId !== undefined) pick.subscriptionIds.push(s.subscriptionId);
      }
      return pick;
    };
  }

  private startCursor(session: Session, t: SfTopic): void {
    const tracker = t.trackers.get(session.clientId);
    if (!tracker) return;
    let mine = this.cursors.get(session);
    if (!mine) {
      mine = new Map();
      this.cursors.set(session, mine);
    }
    mine.get(t.filter)?.stop();
    const cursor = new SfCursor(
      this.ws,
      t,
      session,
      this.pickFor(session, t),
      tracker,
      this.clock,
      (err) =>
        this.logger.error(
          { err, clientId: session.clientId, topic: t.filter },
          'mqtt: store-and-forward delivery failed',
        ),
      this.config.maxPacketSize,
      (reason, m, why) => {
        this.counters[reason]++;
        if (reason === 'unsendable')
          this.logger.warn(
            { clientId: session.clientId, topic: t.filter, stream: m.stream, seq: m.seq, why },
            'mqtt: a stored message cannot be sent over MQTT; skipped',
          );
      },
    );
    mine.set(t.filter, cursor);
    cursor.wake();
  }

  private stopCursors(session: Session): void {
    for (const c of this.cursors.get(session)?.values() ?? []) c.stop();
    this.cursors.delete(session);
  }

  /** The connected clients with their sessions: a read-only view for the admin API. */
  connectedClients(): { session: Session; connection: ClientConnection }[] {
    return [...this.connections].map(([session, connection]) => ({ session, connection }));
  }

  private watch(t: SfTopic): void {
    t.onMessages = () => {
      for (const mine of this.cursors.values()) mine.get(t.filter)?.wake();
    };
  }

  // --- store-and-forward topics at runtime ------------------------------------------------

  listTopics(): TopicInfo[] {
    return this.topics.list().map((t) => this.topicInfo(t));
  }

  topicInfo(t: SfTopic): TopicInfo {
    return this.topics.info(t, (clientId) => {
      const s = this.sessions.get(clientId);
      return s !== undefined && this.connections.has(s);
    });
  }

  async createTopic(input: StoreAndForwardTopicInput): Promise<TopicInfo> {
    const t = await this.topics.create(input);
    this.watch(t);
    // Sessions with a subscription overlapping its filter become its subscribers, as new ones.
    for (const session of this.sessions.values()) {
      let overlaps = false;
      for (const sub of session.subscriptions.values()) {
        if (sub.shareGroup !== undefined || !filtersOverlap(sub.match, t.filter)) continue;
        sub.storeAndForward = [...sub.storeAndForward, t.filter];
        overlaps = true;
      }
      if (overlaps) this.track(session, t);
    }
    return this.topicInfo(t);
  }

  /** Deletes the topic's stream, data and subscriber tracking; its subscriptions stay as ordinary ones. */
  async removeTopic(name: string): Promise<void> {
    const t = this.topics.removable(name);
    for (const mine of this.cursors.values()) {
      mine.get(t.filter)?.stop();
      mine.delete(t.filter);
    }
    for (const session of this.sessions.values()) {
      for (const sub of session.subscriptions.values())
        if (sub.storeAndForward.includes(t.filter))
          sub.storeAndForward = sub.storeAndForward.filter((f) => f !== t.filter);
    }
    t.onMessages = undefined;
    await this.topics.remove(t);
  }

  private scheduleRetention(): void {
    this.retentionTimer = this.clock.setTimeout(() => {
      this.topics
        .refreshRetention()
        .catch((err) => this.logger.error({ err }, 'mqtt: retention check failed'))
        .finally(() => {
          if (!this.closed) this.scheduleRetention();
        });
    }, RETENTION_CHECK_MS);
  }

  /** Whether close() was called: a connection authenticated since must be refused. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Ends every connection (MQTT 5: reason 0x8B), saves positions and retained messages. */
  async close(): Promise<void> {
    this.closed = true;
    this.retentionTimer?.cancel();
    this.unsubscribePublished();
    const now = this.clock.now();
    for (const session of this.connections.keys())
      if (this.journal.has(session.clientId))
        this.journal.disconnected(session.clientId, now, session.expiryMs);
    for (const [session, conn] of [...this.connections]) {
      this.stopCursors(session);
      conn.close(Reason.serverShuttingDown);
    }
    for (const w of this.wills.values()) w.timer?.cancel();
    for (const s of this.sessions.values()) s.expiryTimer?.cancel();
    await this.topics.flush();
    await this.retained.flush();
    await this.journal.close();
  }
}

/** Storage or a route's retention refused a publish (MQTT 5: quota exceeded). */
export function isStorageRefusal(err: unknown): boolean {
  return err instanceof StorageFullError || err instanceof RouteFullError;
}
