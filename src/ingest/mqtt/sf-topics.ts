/**
 * Store-and-forward topics (FairCom EDGE "Store & Forward Topics", SPEC §4): from the
 * configuration or created and removed at runtime. Each has a stream of its own holding every
 * message published to a matching topic, kept for its retention, and per subscriber (client ID)
 * the position after which delivery resumes. Owns `<dataDir>/mqtt/`:
 *
 *   topics.json                    topics created at runtime
 *   subscribers/<stream>.json      each topic's subscriber positions: { <clientId>: Tracker }
 *
 * A Tracker is `{ lastAcked, qos, missed, filters? }` (see sf-cursor.ts). Fields are only ever
 * added, as optional ones: files written by earlier versions stay readable (no `filters`: the
 * client was tracked through the topic's own filter), and earlier versions read ours.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { QoS } from 'mqtt-packet';
import {
  type StoreAndForwardTopicConfig,
  type StoreAndForwardTopicInput,
  storeAndForwardTopicSchema,
} from '../../config/schema.js';
import type { Clock } from '../../delivery/clock.js';
import {
  ConfigError,
  MqttTopicConflictError,
  StreamInUseError,
  UnknownMqttTopicError,
} from '../../errors.js';
import { StateFile } from '../../log/index.js';
import { STREAM_NAME } from '../../store/message.js';
import type { Waystation } from '../../waystation.js';
import type { CursorTopic, Tracker } from './sf-cursor.js';
import { filtersOverlap, topicFilterProblem, topicMatches } from './topic.js';

const UNIT_MS = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 7 * 86_400_000,
  month: 30 * 86_400_000,
  year: 365 * 86_400_000,
} as const;

export interface SubscriberInfo {
  clientId: string;
  /** Seq of the last message it acknowledged (0: none). */
  lastAcknowledgedSeq: number;
  /** Stored messages it has not acknowledged yet. */
  behind: number;
  missedByRetention: number;
  connected: boolean;
}

export interface TopicInfo extends StoreAndForwardTopicConfig {
  source: 'config' | 'runtime';
  messages: number;
  firstSeq: number;
  lastSeq: number;
  subscribers: SubscriberInfo[];
}

export class SfTopic implements CursorTopic {
  readonly trackers = new Map<string, Tracker>();
  /** Seq below which retention allows deleting (kept current by refreshRetention). */
  retentionFloor = 0;
  readonly file: StateFile<Record<string, Tracker>>;
  /** Wakes this topic's connected subscribers (set by the broker). */
  onMessages: (() => void) | undefined;

  constructor(
    readonly config: StoreAndForwardTopicConfig,
    readonly source: 'config' | 'runtime',
    dir: string,
    onError: (err: unknown) => void,
  ) {
    this.file = new StateFile(
      join(dir, 'subscribers', `${config.stream}.json`),
      () => Object.fromEntries(this.trackers),
      onError,
    );
  }

  get filter(): string {
    return this.config.topic;
  }

  get stream(): string {
    return this.config.stream;
  }

  get ratePerSecond(): number {
    return this.config.maxDeliveryRatePerSecond;
  }

  trackerChanged(): void {
    this.file.changed();
  }

  /** Where a subscriber seen for the first time starts (its lastAcked), per the new-subscriber options. */
  startFor(bounds: { firstSeq: number; lastSeq: number }): number {
    const c = this.config;
    if (c.newSubscriberDeliveryMode === 'NewMessages') return bounds.lastSeq;
    const max = c.newSubscriberMaxStoredMessages;
    if (max === 'all') return bounds.firstSeq - 1;
    return Math.max(bounds.firstSeq - 1, bounds.lastSeq - max);
  }

  retentionMs(): number | undefined {
    const r = this.config.retention;
    return r === 'forever' ? undefined : r.period * UNIT_MS[r.unit];
  }
}

export class StoreAndForwardTopics {
  private readonly topics = new Map<string, SfTopic>();
  private readonly byStream = new Map<string, SfTopic>();
  private readonly runtimeFile: StateFile<StoreAndForwardTopicConfig[]>;

  private constructor(
    private readonly ws: Waystation,
    private readonly dir: string,
    private readonly clock: Clock,
    private readonly onError: (err: unknown) => void,
  ) {
    this.runtimeFile = new StateFile(
      join(dir, 'topics.json'),
      () => [...this.topics.values()].filter((t) => t.source === 'runtime').map((t) => t.config),
      onError,
      0,
    );
  }

  static async open(
    ws: Waystation,
    dir: string,
    configured: readonly StoreAndForwardTopicConfig[],
    clock: Clock,
    onError: (err: unknown) => void,
  ): Promise<StoreAndForwardTopics> {
    await mkdir(join(dir, 'subscribers'), { recursive: true });
    const m = new StoreAndForwardTopics(ws, dir, clock, onError);
    for (const c of configured) await m.add(c, 'config');
    const saved = ((await StateFile.read(m.runtimeFile.path)) ?? []) as StoreAndForwardTopicConfig[];
    for (const c of saved) {
      if (m.topics.has(c.topic) || m.forStream(c.stream)) {
        onError(
          new Error(
            `store-and-forward topic "${c.topic}" (stream "${c.stream}") created at runtime now clashes with the configuration; the configured one is used`,
          ),
        );
        continue;
      }
      await m.add(c, 'runtime');
    }
    return m;
  }

  list(): SfTopic[] {
    return [...this.topics.values()];
  }

  get(filter: string): SfTopic | undefined {
    return this.topics.get(filter);
  }

  /** By topic filter or by stream name. */
  find(name: string): SfTopic {
    const t = this.topics.get(name) ?? this.forStream(name);
    if (!t) throw new UnknownMqttTopicError(name);
    return t;
  }

  /** Topics whose filter overlaps a subscription's filter (some topic name matches both). */
  overlapping(filter: string): SfTopic[] {
    const out: SfTopic[] = [];
    for (const t of this.topics.values()) if (filtersOverlap(t.filter, filter)) out.push(t);
    return out;
  }

  /** Topics whose filter matches a published topic name. */
  matching(topic: string): SfTopic[] {
    const out: SfTopic[] = [];
    for (const t of this.topics.values()) if (topicMatches(t.filter, topic)) out.push(t);
    return out;
  }

  async create(input: StoreAndForwardTopicInput): Promise<SfTopic> {
    const parsed = storeAndForwardTopicSchema.safeParse(input);
    if (!parsed.success) {
      throw new ConfigError(
        parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
      );
    }
    const c = parsed.data;
    const problem =
      topicFilterProblem(c.topic) ??
      (c.topic.startsWith('$') ? 'a store-and-forward topic must not start with "$"' : undefined);
    if (problem) throw new ConfigError([{ path: 'topic', message: problem }]);
    if (!STREAM_NAME.test(c.stream) || c.stream.includes('..')) {
      throw new ConfigError([
        {
          path: 'stream',
          message:
            'stream names use 1-128 letters, digits, "_", "." and "-", starting with a letter or digit',
        },
      ]);
    }
    if (this.topics.has(c.topic))
      throw new MqttTopicConflictError(`Store-and-forward topic "${c.topic}" already exists.`);
    if (this.forStream(c.stream) || this.ws.streams().some((s) => s.name === c.stream)) {
      throw new MqttTopicConflictError(
        `Stream "${c.stream}" already exists; a new store-and-forward topic needs a stream of its own.`,
      );
    }
    const topic = await this.add(c, 'runtime');
    await this.runtimeFile.save();
    return topic;
  }

  /**
   * The topic `name` (filter or stream) if it can be removed; throws why not: topics from the
   * configuration file are removed by editing it, and a stream configured routes read stays.
   */
  removable(name: string): SfTopic {
    const t = this.find(name);
    if (t.source === 'config') {
      throw new MqttTopicConflictError(
        `Store-and-forward topic "${t.filter}" is defined in the configuration (mqtt.storeAndForwardTopics); remove it there and restart.`,
      );
    }
    const readers = this.ws.streams().find((s) => s.name === t.stream)?.routes ?? [];
    if (readers.length > 0) throw new StreamInUseError(t.stream, readers);
    return t;
  }

  /** Deletes a removable topic with its stream, data files and subscriber positions; its cursors are stopped. */
  async remove(t: SfTopic): Promise<void> {
    await this.ws.removeStream(t.stream);
    this.topics.delete(t.filter);
    this.byStream.delete(t.stream);
    await t.file.cancel();
    await this.runtimeFile.save();
    await rm(t.file.path, { force: true });
  }

  info(t: SfTopic, connected: (clientId: string) => boolean): TopicInfo {
    const { firstSeq, lastSeq } = this.ws.streamBounds(t.stream);
    const stream = this.ws.streams().find((s) => s.name === t.stream);
    return {
      ...t.config,
      source: t.source,
      messages: stream?.messages ?? 0,
      firstSeq,
      lastSeq,
      subscribers: [...t.trackers].map(([clientId, tr]) => ({
        clientId,
        lastAcknowledgedSeq: tr.lastAcked,
        behind: Math.max(0, lastSeq - Math.max(tr.lastAcked, firstSeq - 1)),
        missedByRetention: tr.missed,
        connected: connected(clientId),
      })),
    };
  }

  /**
   * Moves each topic's retention floor to its first message younger than the retention
   * (binary search on seq: timestamps grow with seq). The store deletes below it.
   */
  async refreshRetention(): Promise<void> {
    for (const t of this.topics.values()) {
      const ms = t.retentionMs();
      const { firstSeq, lastSeq } = this.ws.streamBounds(t.stream);
      if (ms === undefined) {
        t.retentionFloor = firstSeq;
        continue;
      }
      const cutoff = this.clock.now() - ms;
      let lo = Math.max(firstSeq, t.retentionFloor);
      let hi = lastSeq + 1;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        const [m] = await this.ws.readMessages(t.stream, { fromSeq: mid, maxMessages: 1 });
        if (!m || m.timestamp >= cutoff) hi = mid;
        else lo = m.seq + 1;
      }
      t.retentionFloor = lo;
    }
  }

  async flush(): Promise<void> {
    for (const t of this.topics.values()) await t.file.flush();
    await this.runtimeFile.flush();
  }

  /** The topic whose stream this is (called for every publish to any stream). */
  forStream(stream: string): SfTopic | undefined {
    return this.byStream.get(stream);
  }

  private async add(c: StoreAndForwardTopicConfig, source: 'config' | 'runtime'): Promise<SfTopic> {
    await this.ws.createStream(c.stream);
    const t = new SfTopic(c, source, this.dir, this.onError);
    const saved = (await StateFile.read(t.file.path)) as Record<string, Tracker> | undefined;
    for (const [clientId, tr] of Object.entries(saved ?? {})) {
      t.trackers.set(clientId, {
        lastAcked: tr.lastAcked,
        qos: tr.qos as QoS,
        missed: tr.missed ?? 0,
        filters: tr.filters ? { ...tr.filters } : { [c.topic]: tr.qos as QoS },
      });
    }
    t.retentionFloor = this.ws.streamBounds(c.stream).firstSeq;
    this.ws.holdHistory(c.stream, () => t.retentionFloor);
    this.topics.set(c.topic, t);
    this.byStream.set(c.stream, t);
    return t;
  }
}
