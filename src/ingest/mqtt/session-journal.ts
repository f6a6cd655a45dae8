/**
 * The durable half of persistent MQTT sessions (those with a session expiry): what such a session
 * keeps across a broker restart or crash, journaled on the product's log in
 * `<dataDir>/mqtt/sessions`. Record kinds (the kind in the record's metadata; its payload is the
 * JSON entry's length as 4 bytes, the JSON, then for an M record the message's payload — JSON in
 * the payload, so no entry is bounded by the log's 64 KiB of metadata):
 *
 *   S  the session's subscriptions and expiry, whole, each time they change (the last one counts)
 *   D  its connection ended, when, and the expiry it left with (counted from then after a restart)
 *   E  the session ended (clean start, expiry): what came before about it is void
 *   M  a QoS 1/2 message routed to persistent sessions, with the sessions it goes to: one record
 *      per publish, appended before the publisher is answered (the broker awaits it); a later M
 *      with the same id (a compaction's copy) replaces it
 *   A  a session is done with a message (acknowledged, or dropped as MQTT allows)
 *
 * Everything goes through one queue into one log, one append at a time (the next waits for the
 * last to commit), so an S, D or A appended before an M is durable once that M is: only M appends
 * are awaited. Records that arrive meanwhile are one append (one commit wait). An S, D, E or A
 * whose append failed is tried again (nobody waits for it, so it must not be lost); an M fails
 * its publisher. Opening replays the log into each live session; compaction writes every live
 * session and every unfinished message again and deletes the log below that copy.
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

/** What compaction must write again about a live session. */
interface LiveSession {
  expiryMs: number;
  subscriptions: SavedSubscription[];
  disconnectedAt: number | undefined;
  /** Unfinished messages by id. */
  pending: Set<number>;
}

/** An unfinished message: what compaction copies forward (the payload is the sessions' own Buffer). */
interface Unfinished {
  message: BrokerMessage;
  /** The sessions still owing it, with how it goes to each. */
  owing: Map<string, JournaledDelivery>;
}

interface Queued {
  input: AppendInput;
  /** An S, D, E or A nobody waits for: appended again after a failure instead of failing. */
  retry: boolean;
  /** Told the record's seq once it is in the log. */
  placed: ((seq: number) => void) | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const COMPACT_AFTER_RECORDS = 50_000;
/** Compaction also runs once this many payload bytes were appended since the last one. */
const COMPACT_AFTER_BYTES = 64 * 1024 * 1024;
const READ_BATCH = 1000;
/** A failed append of records nobody waits for is tried again after this, doubling up to 30 s. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

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

function entry(e: Entry, payload?: Buffer): AppendInput {
  const json = Buffer.from(JSON.stringify(e));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.byteLength, 0);
  return {
    meta: Buffer.from(e.t),
    payload: payload ? Buffer.concat([head, json, payload]) : Buffer.concat([head, json]),
  };
}

/** An entry and, for an M, the message's payload, from a record's payload. */
function parse(bytes: Buffer): { e: Entry; payload: Buffer } {
  const length = bytes.readUInt32BE(0);
  const e = JSON.parse(bytes.subarray(4, 4 + length).toString('utf8')) as Entry;
  return { e, payload: bytes.subarray(4 + length) };
}

function messageEntry(id: number, message: BrokerMessage, to: Iterable<JournaledDelivery>): AppendInput {
  return entry(
    {
      t: 'M',
      id,
      topic: message.topic,
      qos: message.qos,
      exp: message.expiresAt ?? null,
      p: propertiesToJson(message.properties),
      to: [...to].map((d) => [d.clientId, d.qos, d.retain ? 1 : 0, d.subscriptionIds]),
    },
    message.payload,
  );
}

export class SessionJournal {
  private readonly live = new Map<string, LiveSession>();
  private readonly unfinished = new Map<number, Unfinished>();
  private queue: Queued[] = [];
  private flushScheduled = false;
  /** The append under way: the next one starts once it committed (the log's order is the journal's). */
  private flushing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = RETRY_FIRST_MS;
  private nextId: number;
  private appendedRecords = 0;
  private appendedBytes = 0;
  private compacting: Promise<void> | undefined;
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
   * one (and more than twice the live sessions and unfinished messages, so writing them again
   * cannot call for the next), or 64 MiB of payload.
   */
  static async open(
    dir: string,
    options: LogOptions,
    onError: (err: unknown) => void,
    compactAfterRecords = COMPACT_AFTER_RECORDS,
  ): Promise<{ journal: SessionJournal; sessions: SavedSession[] }> {
    const log = await Log.open(dir, options);
    try {
      const sessions = new Map<string, SavedSession>();
      // Only messages still owed to someone are kept while replaying (payloads included).
      const messages = new Map<number, { message: BrokerMessage; to: Map<string, JournaledDelivery> }>();
      let maxId = 0;
      const { firstSeq, lastSeq } = log.stats();
      for (let from = firstSeq; from <= lastSeq; ) {
        const records = await log.read({ fromSeq: from, untilSeq: lastSeq, maxRecords: READ_BATCH });
        if (records.length === 0) break;
        for (const r of records) {
          const { e, payload } = parse(await payloadOf(log, r));
          switch (e.t) {
            case 'S':
              // An S is written while the client is connected (compaction follows it with a D).
              sessions.set(e.c, {
                clientId: e.c,
                expiryMs: e.x,
                disconnectedAt: undefined,
                subscriptions: e.s.map(fromTuple),
                messages: [],
              });
              break;
            case 'D': {
              const session = sessions.get(e.c);
              if (session) Object.assign(session, { disconnectedAt: e.at, expiryMs: e.x });
              break;
            }
            case 'E':
              sessions.delete(e.c);
              for (const [id, m] of messages) if (m.to.delete(e.c) && m.to.size === 0) messages.delete(id);
              break;
            case 'M': {
              maxId = Math.max(maxId, e.id);
              const message: BrokerMessage = {
                topic: e.topic,
                payload: Buffer.from(payload),
                qos: e.qos,
                retain: false,
                properties: propertiesFromJson(e.p),
                expiresAt: e.exp ?? undefined,
              };
              // Kept for every addressee: after a compaction a session's S may come later in the log.
              const to = new Map<string, JournaledDelivery>();
              for (const [clientId, qos, retain, subscriptionIds] of e.to)
                to.set(clientId, { clientId, qos, retain: retain === 1, subscriptionIds });
              messages.delete(e.id);
              if (to.size > 0) messages.set(e.id, { message, to });
              break;
            }
            case 'A': {
              const m = messages.get(e.id);
              if (m?.to.delete(e.c) && m.to.size === 0) messages.delete(e.id);
              break;
            }
          }
        }
        from = records[records.length - 1]!.seq + 1;
      }
      const journal = new SessionJournal(log, onError, maxId + 1, compactAfterRecords);
      for (const [id, m] of messages) {
        const owing = new Map<string, JournaledDelivery>();
        for (const d of m.to.values()) {
          const session = sessions.get(d.clientId);
          if (!session) continue;
          session.messages.push({
            id,
            message: m.message,
            qos: d.qos,
            subscriptionIds: d.subscriptionIds,
            retain: d.retain,
          });
          owing.set(d.clientId, d);
        }
        if (owing.size > 0) journal.unfinished.set(id, { message: m.message, owing });
      }
      for (const s of sessions.values()) {
        journal.live.set(s.clientId, {
          expiryMs: s.expiryMs,
          subscriptions: s.subscriptions,
          disconnectedAt: s.disconnectedAt,
          pending: new Set(s.messages.map((m) => m.id)),
        });
      }
      const stats = log.stats();
      journal.appendedRecords = stats.records;
      journal.appendedBytes = stats.bytes;
      journal.maybeCompact();
      return { journal, sessions: [...sessions.values()] };
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
    const subs = subscriptions.map((s) => ({ ...s }));
    const known = this.live.get(clientId);
    if (known) Object.assign(known, { expiryMs, subscriptions: subs, disconnectedAt: undefined });
    else
      this.live.set(clientId, {
        expiryMs,
        subscriptions: subs,
        disconnectedAt: undefined,
        pending: new Set(),
      });
    this.unawaited(entry({ t: 'S', c: clientId, x: expiryMs, s: subs.map(toTuple) }));
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
    const owing = new Map<string, JournaledDelivery>();
    for (const d of deliveries) {
      const session = this.live.get(d.clientId);
      if (!session) continue;
      session.pending.add(id);
      owing.set(d.clientId, d);
    }
    this.unfinished.set(id, { message, owing });
    return { id, durable: this.enqueue(messageEntry(id, message, owing.values()), false) };
  }

  /** The session is done with message `id` (acknowledged, or dropped). */
  done(clientId: string, id: number): void {
    const session = this.live.get(clientId);
    if (!session?.pending.delete(id)) return;
    this.release(id, clientId);
    this.unawaited(entry({ t: 'A', c: clientId, id }));
  }

  /** Appends what is queued (one more try for what failed before) and closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.compacting;
    await this.flushing;
    this.startFlush();
    await this.flushing;
    await this.log.close();
  }

  private release(id: number, clientId: string): void {
    const m = this.unfinished.get(id);
    if (!m) return;
    m.owing.delete(clientId);
    if (m.owing.size === 0) this.unfinished.delete(id);
  }

  /** Records nobody waits for; after close (a connection that ends after the broker) none are taken. */
  private unawaited(input: AppendInput): void {
    if (this.closed) return;
    this.enqueue(input, true).catch(this.onError);
  }

  private enqueue(input: AppendInput, retry: boolean, placed?: (seq: number) => void): Promise<void> {
    if (this.closed)
      return Promise.reject(new Error('the MQTT session journal is closed: the broker is stopping'));
    return new Promise((resolve, reject) => {
      this.queue.push({ input, retry, placed, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing || this.retryTimer) return;
    this.flushScheduled = true;
    process.nextTick(() => this.startFlush());
  }

  /** Appends what is queued as one append, unless one is under way (it starts the next when done). */
  private startFlush(): void {
    this.flushScheduled = false;
    if (this.flushing || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    let bytes = 0;
    for (const q of batch) bytes += (q.input.payload as Buffer).byteLength;
    this.flushing = this.log.append(batch.map((q) => q.input)).then(
      ({ firstSeq }) => {
        this.retryDelayMs = RETRY_FIRST_MS;
        for (const [i, q] of batch.entries()) {
          q.placed?.(firstSeq + i);
          q.resolve();
        }
        this.appendedRecords += batch.length;
        this.appendedBytes += bytes;
        this.afterFlush();
        this.maybeCompact();
      },
      (err: unknown) => {
        // Awaited records fail their caller; the others go first in the next try, in order.
        const again = batch.filter((q) => q.retry && !this.closed);
        for (const q of batch) if (!q.retry || this.closed) q.reject(err);
        if (again.length > 0) {
          this.onError(err);
          this.queue = [...again, ...this.queue];
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.startFlush();
          }, this.retryDelayMs);
          this.retryTimer.unref();
          this.retryDelayMs = Math.min(this.retryDelayMs * 2, RETRY_MAX_MS);
        }
        this.afterFlush();
      },
    );
  }

  private afterFlush(): void {
    this.flushing = undefined;
    if (this.queue.length > 0 && !this.retryTimer) this.startFlush();
  }

  private maybeCompact(): void {
    if (this.closed || this.compacting) return;
    const live = this.live.size + this.unfinished.size;
    const due =
      this.appendedRecords >= Math.max(this.compactAfterRecords, 2 * live) ||
      this.appendedBytes >= COMPACT_AFTER_BYTES;
    if (!due) return;
    this.compacting = this.compact()
      .catch(this.onError)
      .finally(() => {
        this.compacting = undefined;
      });
  }

  /**
   * Writes every live session (S, and D when disconnected) and every unfinished message (M, with
   * the sessions still owing it) again, then deletes the log below that copy. What lies before
   * it is superseded: the copy is taken from the state every record queued before it changed
   * first, and appends keep their order.
   */
  private async compact(): Promise<void> {
    // With nothing live, what is committed now is all superseded (later records are kept).
    const committed = this.log.stats().lastSeq + 1;
    let floor = Number.POSITIVE_INFINITY;
    const placed = (seq: number) => {
      floor = Math.min(floor, seq);
    };
    const copies: Promise<void>[] = [];
    for (const [clientId, s] of this.live) {
      const subs = s.subscriptions.map(toTuple);
      copies.push(this.enqueue(entry({ t: 'S', c: clientId, x: s.expiryMs, s: subs }), false, placed));
      if (s.disconnectedAt !== undefined)
        copies.push(
          this.enqueue(entry({ t: 'D', c: clientId, at: s.disconnectedAt, x: s.expiryMs }), false, placed),
        );
    }
    for (const [id, m] of this.unfinished)
      copies.push(this.enqueue(messageEntry(id, m.message, m.owing.values()), false, placed));
    await Promise.all(copies);
    // Counted from here: the copy's own records must not call for the next compaction.
    this.appendedRecords = 0;
    this.appendedBytes = 0;
    await this.log.deleteBelow(floor === Number.POSITIVE_INFINITY ? committed : floor);
  }
}

/** A record's payload, also when the log keeps it in a side file (a large message). */
async function payloadOf(log: Log, r: LogRecord): Promise<Buffer> {
  if (r.payload) return r.payload;
  const chunks: Buffer[] = [];
  for await (const chunk of log.openPayload(r)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
