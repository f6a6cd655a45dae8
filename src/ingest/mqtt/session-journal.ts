/**
 * The durable half of persistent MQTT sessions (those with a session expiry): what such a session
 * keeps across a broker restart or crash, journaled on the product's log in
 * `<dataDir>/mqtt/sessions`. Record kinds (JSON metadata; an M record's payload is the message's):
 *
 *   S  the session's subscriptions and expiry, whole, each time they change (the last one counts)
 *   D  its connection ended, when, and the expiry it left with (counted from then after a restart)
 *   E  the session ended (clean start, expiry): what came before about it is void
 *   M  a QoS 1/2 message routed to persistent sessions, with the sessions it goes to: one record
 *      per publish, appended before the publisher is answered (the broker awaits it)
 *   A  a session is done with a message (acknowledged, or dropped as MQTT allows)
 *
 * Everything goes through one queue into one log, in order, so an S, D or A appended before an M
 * is durable once that M is: only M appends are awaited. Records that arrive in the same tick are
 * one append (one commit wait). Opening replays the log into each live session; compaction
 * rewrites the S records of live sessions and deletes the log below the oldest record still needed
 * (the oldest unfinished message, or the rewrite).
 */
import type { QoS } from 'mqtt-packet';
import { type AppendInput, Log, type LogOptions, type LogRecord } from '../../log/index.js';
import type { BrokerMessage, PublishProperties } from './message.js';

export interface SavedSubscription {
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | undefined;
}

/** How a journaled message goes to one session. */
export interface JournaledDelivery {
  clientId: string;
  qos: QoS;
  subscriptionIds: number[];
  retain: boolean;
}

export interface SavedMessage {
  /** The journal's id of the message (what `done` takes). */
  id: number;
  message: BrokerMessage;
  qos: QoS;
  subscriptionIds: number[];
  retain: boolean;
}

export interface SavedSession {
  clientId: string;
  expiryMs: number;
  /** When its last connection ended (ms since the epoch); undefined when it was connected at the stop. */
  disconnectedAt: number | undefined;
  subscriptions: SavedSubscription[];
  /** Messages it had not finished (queued, or in flight and not acknowledged), oldest first. */
  messages: SavedMessage[];
}

type SubscriptionTuple = [string, QoS, 0 | 1, 0 | 1, number, number | null];

type Entry =
  | { t: 'S'; c: string; x: number; s: SubscriptionTuple[] }
  | { t: 'D'; c: string; at: number; x: number }
  | { t: 'E'; c: string }
  | {
      t: 'M';
      id: number;
      topic: string;
      qos: QoS;
      exp: number | null;
      p: Record<string, unknown>;
      to: [string, QoS, 0 | 1, number[]][];
    }
  | { t: 'A'; c: string; id: number };

/** What compaction must rewrite about a live session. */
interface LiveSession {
  expiryMs: number;
  subscriptions: SavedSubscription[];
  disconnectedAt: number | undefined;
  /** Seq of its oldest S or D record still relied on (its last ones). */
  seq: number;
  /** Unfinished messages by id. */
  pending: Set<number>;
}

interface Queued {
  input: AppendInput;
  /** Set once the record is in the log: its seq. */
  placed: ((seq: number) => void) | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const COMPACT_AFTER_RECORDS = 50_000;
const READ_BATCH = 1000;

function toTuple(s: SavedSubscription): SubscriptionTuple {
  return [
    s.filter,
    s.qos,
    s.noLocal ? 1 : 0,
    s.retainAsPublished ? 1 : 0,
    s.retainHandling,
    s.subscriptionId ?? null,
  ];
}

function fromTuple([filter, qos, noLocal, rap, retainHandling, id]: SubscriptionTuple): SavedSubscription {
  return {
    filter,
    qos,
    noLocal: noLocal === 1,
    retainAsPublished: rap === 1,
    retainHandling,
    subscriptionId: id ?? undefined,
  };
}

/** MQTT 5 properties as JSON: the one binary property, Correlation Data, as base64. */
function propertiesToJson(p: PublishProperties): Record<string, unknown> {
  const { correlationData, ...rest } = p;
  return correlationData === undefined
    ? rest
    : { ...rest, correlationData: correlationData.toString('base64') };
}

function propertiesFromJson(p: Record<string, unknown>): PublishProperties {
  const { correlationData, ...rest } = p;
  return (
    typeof correlationData === 'string'
      ? { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
      : rest
  ) as PublishProperties;
}

function entry(e: Entry, payload: Uint8Array = new Uint8Array(0)): AppendInput {
  return { meta: Buffer.from(JSON.stringify(e)), payload };
}

export class SessionJournal {
  private readonly live = new Map<string, LiveSession>();
  /** Unfinished messages: their record's seq (once placed) and the sessions still owing them. */
  private readonly messages = new Map<number, { seq: number | undefined; owing: Set<string> }>();
  private queue: Queued[] = [];
  private flushScheduled = false;
  private nextId: number;
  private appendedSinceCompaction = 0;
  private compacting: Promise<void> | undefined;
  /** Appends under way (close waits for them). */
  private readonly flushes = new Set<Promise<void>>();
  private closed = false;

  private constructor(
    private readonly log: Log,
    private readonly onError: (err: unknown) => void,
    firstId: number,
    private readonly compactAfterRecords: number,
  ) {
    this.nextId = firstId;
  }

  /**
   * Opens (or creates) the journal in `dir` and returns it with the sessions it holds.
   * `compactAfterRecords`: compaction runs once this many records were appended since the last
   * one (and more than twice the live sessions, so rewriting them cannot trigger the next).
   */
  static async open(
    dir: string,
    options: LogOptions,
    onError: (err: unknown) => void,
    compactAfterRecords = COMPACT_AFTER_RECORDS,
  ): Promise<{ journal: SessionJournal; sessions: SavedSession[] }> {
    const log = await Log.open(dir, options);
    try {
      const sessions = new Map<string, SavedSession & { seq: number }>();
      const messages = new Map<
        number,
        { seq: number; message: BrokerMessage; to: Map<string, JournaledDelivery> }
      >();
      let maxId = 0;
      const { firstSeq, lastSeq } = log.stats();
      for (let from = firstSeq; from <= lastSeq; ) {
        const records = await log.read({ fromSeq: from, untilSeq: lastSeq, maxRecords: READ_BATCH });
        if (records.length === 0) break;
        for (const r of records) {
          const e = JSON.parse(r.meta.toString('utf8')) as Entry;
          switch (e.t) {
            case 'S': {
              // An S is written while the client is connected (compaction follows it with a D).
              sessions.set(e.c, {
                clientId: e.c,
                expiryMs: e.x,
                disconnectedAt: undefined,
                subscriptions: e.s.map(fromTuple),
                messages: [],
                seq: r.seq,
              });
              break;
            }
            case 'D': {
              const s = sessions.get(e.c);
              if (s) Object.assign(s, { disconnectedAt: e.at, expiryMs: e.x });
              break;
            }
            case 'E':
              sessions.delete(e.c);
              for (const m of messages.values()) m.to.delete(e.c);
              break;
            case 'M': {
              maxId = Math.max(maxId, e.id);
              const message: BrokerMessage = {
                topic: e.topic,
                payload: await payloadOf(log, r),
                qos: e.qos,
                retain: false,
                properties: propertiesFromJson(e.p),
                expiresAt: e.exp ?? undefined,
              };
              // Kept for every addressee: after a compaction a session's S may come later in the log.
              const to = new Map<string, JournaledDelivery>();
              for (const [clientId, qos, retain, subscriptionIds] of e.to)
                to.set(clientId, { clientId, qos, retain: retain === 1, subscriptionIds });
              messages.set(e.id, { seq: r.seq, message, to });
              break;
            }
            case 'A':
              messages.get(e.id)?.to.delete(e.c);
              break;
          }
        }
        from = records[records.length - 1]!.seq + 1;
      }
      const journal = new SessionJournal(log, onError, maxId + 1, compactAfterRecords);
      for (const [id, m] of messages) {
        const owing = new Set<string>();
        for (const d of m.to.values()) {
          const s = sessions.get(d.clientId);
          if (!s) continue;
          s.messages.push({
            id,
            message: m.message,
            qos: d.qos,
            subscriptionIds: d.subscriptionIds,
            retain: d.retain,
          });
          owing.add(d.clientId);
        }
        if (owing.size > 0) journal.messages.set(id, { seq: m.seq, owing });
      }
      for (const s of sessions.values()) {
        const pending = new Set(s.messages.map((m) => m.id));
        journal.live.set(s.clientId, {
          expiryMs: s.expiryMs,
          subscriptions: s.subscriptions,
          disconnectedAt: s.disconnectedAt,
          seq: s.seq,
          pending,
        });
      }
      journal.appendedSinceCompaction = log.stats().records;
      journal.maybeCompact();
      return {
        journal,
        sessions: [...sessions.values()].map(({ seq: _seq, ...s }) => s),
      };
    } catch (err) {
      await log.close();
      throw err;
    }
  }

  /** Sessions the journal holds now. */
  get size(): number {
    return this.live.size;
  }

  /** A persistent session's subscriptions or expiry changed (also: it started). */
  saveSession(clientId: string, expiryMs: number, subscriptions: readonly SavedSubscription[]): void {
    const known = this.live.get(clientId);
    const subs = subscriptions.map((s) => ({ ...s }));
    const session: LiveSession = known ?? {
      expiryMs,
      subscriptions: subs,
      disconnectedAt: undefined,
      seq: Number.POSITIVE_INFINITY,
      pending: new Set(),
    };
    Object.assign(session, { expiryMs, subscriptions: subs, disconnectedAt: undefined });
    this.live.set(clientId, session);
    this.unawaited(entry({ t: 'S', c: clientId, x: expiryMs, s: subs.map(toTuple) }), (seq) => {
      if (this.live.get(clientId) === session) session.seq = seq;
    });
  }

  /** A journaled session's connection ended at `at`; it lives on for `expiryMs`. */
  disconnected(clientId: string, at: number, expiryMs: number): void {
    const session = this.live.get(clientId);
    if (!session) return;
    session.disconnectedAt = at;
    session.expiryMs = expiryMs;
    this.unawaited(entry({ t: 'D', c: clientId, at, x: expiryMs }));
  }

  /** The session ended: it and what it was owed are forgotten. */
  ended(clientId: string): void {
    const session = this.live.get(clientId);
    if (!session) return;
    this.live.delete(clientId);
    for (const id of session.pending) this.release(id, clientId);
    this.unawaited(entry({ t: 'E', c: clientId }));
  }

  /** Whether the journal holds this session. */
  has(clientId: string): boolean {
    return this.live.has(clientId);
  }

  /**
   * Journals a message for the given (journaled) sessions. Returns its id, at once, and a promise
   * that resolves once the record is durable per the log's fsync policy.
   */
  addMessage(
    message: BrokerMessage,
    deliveries: readonly JournaledDelivery[],
  ): { id: number; durable: Promise<void> } {
    const id = this.nextId++;
    const owing = new Set<string>();
    for (const d of deliveries) {
      const session = this.live.get(d.clientId);
      if (!session) continue;
      session.pending.add(id);
      owing.add(d.clientId);
    }
    const record = { seq: undefined as number | undefined, owing };
    this.messages.set(id, record);
    const durable = this.enqueue(
      entry(
        {
          t: 'M',
          id,
          topic: message.topic,
          qos: message.qos,
          exp: message.expiresAt ?? null,
          p: propertiesToJson(message.properties),
          to: deliveries.map((d) => [d.clientId, d.qos, d.retain ? 1 : 0, d.subscriptionIds]),
        },
        message.payload,
      ),
      (seq) => {
        record.seq = seq;
      },
    );
    return { id, durable };
  }

  /** The session is done with message `id` (acknowledged, or dropped). */
  done(clientId: string, id: number): void {
    const session = this.live.get(clientId);
    if (!session?.pending.delete(id)) return;
    this.release(id, clientId);
    this.unawaited(entry({ t: 'A', c: clientId, id }));
  }

  /** Appends what is queued and closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.compacting;
    this.startFlush();
    await Promise.all(this.flushes);
    await this.log.close();
  }

  private release(id: number, clientId: string): void {
    const m = this.messages.get(id);
    if (!m) return;
    m.owing.delete(clientId);
    if (m.owing.size === 0) this.messages.delete(id);
  }

  /** Records nobody waits for; after close (a connection that ends after the broker) none are taken. */
  private unawaited(input: AppendInput, placed?: (seq: number) => void): void {
    if (this.closed) return;
    this.enqueue(input, placed).catch(this.onError);
  }

  private enqueue(input: AppendInput, placed: ((seq: number) => void) | undefined): Promise<void> {
    if (this.closed)
      return Promise.reject(new Error('the MQTT session journal is closed: the broker is stopping'));
    return new Promise((resolve, reject) => {
      this.queue.push({ input, placed, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        process.nextTick(() => this.startFlush());
      }
    });
  }

  /** Appends what is queued as one append; the log keeps appends in the order they were made. */
  private startFlush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    const flush = this.log.append(batch.map((q) => q.input)).then(
      ({ firstSeq }) => {
        for (const [i, q] of batch.entries()) {
          q.placed?.(firstSeq + i);
          q.resolve();
        }
        this.appendedSinceCompaction += batch.length;
        this.maybeCompact();
      },
      (err: unknown) => {
        for (const q of batch) q.reject(err);
      },
    );
    this.flushes.add(flush);
    void flush.finally(() => this.flushes.delete(flush));
  }

  private maybeCompact(): void {
    if (this.closed || this.compacting) return;
    if (this.appendedSinceCompaction < Math.max(this.compactAfterRecords, 2 * this.live.size)) return;
    this.compacting = this.compact()
      .catch(this.onError)
      .finally(() => {
        this.compacting = undefined;
      });
  }

  /**
   * Rewrites the S and D records of every live session, then deletes the log below the oldest
   * record still needed: the rewrite, or the oldest message some session has not finished.
   */
  private async compact(): Promise<void> {
    const rewrites: Promise<void>[] = [];
    let floor = Number.POSITIVE_INFINITY;
    for (const [clientId, s] of this.live) {
      const session = s;
      rewrites.push(
        this.enqueue(
          entry({ t: 'S', c: clientId, x: s.expiryMs, s: s.subscriptions.map(toTuple) }),
          (seq) => {
            floor = Math.min(floor, seq);
            if (this.live.get(clientId) === session) session.seq = seq;
          },
        ),
      );
      if (s.disconnectedAt !== undefined)
        rewrites.push(
          this.enqueue(entry({ t: 'D', c: clientId, at: s.disconnectedAt, x: s.expiryMs }), undefined),
        );
    }
    await Promise.all(rewrites);
    // Counted from here: the rewrite's own records must not call for the next compaction.
    this.appendedSinceCompaction = 0;
    for (const m of this.messages.values()) if (m.seq !== undefined) floor = Math.min(floor, m.seq);
    // Nothing live at all: everything committed so far can go.
    if (floor === Number.POSITIVE_INFINITY) floor = this.log.stats().lastSeq + 1;
    await this.log.deleteBelow(floor);
  }
}

/** An M record's payload, also when the log keeps it in a side file (a large message). */
async function payloadOf(log: Log, r: LogRecord): Promise<Buffer> {
  if (r.payload) return r.payload;
  const chunks: Buffer[] = [];
  for await (const chunk of log.openPayload(r)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
