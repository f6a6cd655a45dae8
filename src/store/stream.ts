/**
 * A stream: a named log whose records are messages. Owns the stream directory
 * (`<dataDir>/streams/<name>/`): the log's files plus `stream.state` (its incarnation).
 */

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  type AppendInput,
  Log,
  type LogOptions,
  type LogRecord,
  readAtomicJson,
  type StorageFileSystem,
  writeAtomicJson,
} from '../log/index.js';
import type { MessageStream, StreamChunk, StreamStats } from './backend.js';
import {
  decodeMeta,
  encodeMeta,
  type MessageMeta,
  messageId,
  newIncarnation,
  type StoredMessage,
} from './message.js';

export interface PublishInput extends Partial<MessageMeta> {
  payload: Uint8Array | AsyncIterable<Uint8Array>;
}

export interface PublishedRef {
  id: string;
  stream: string;
  seq: number;
}

export interface ReadMessagesOptions {
  fromSeq: number;
  direction?: 'forward' | 'backward';
  maxMessages?: number;
  maxBytes?: number;
  untilSeq?: number;
}

const EMPTY = Buffer.alloc(0);

interface StreamState {
  version: 1;
  incarnation: string;
  createdAt: number;
}

export class Stream implements MessageStream {
  private constructor(
    readonly name: string,
    readonly incarnation: string,
    readonly log: Log,
  ) {}

  static async open(
    fs: StorageFileSystem,
    streamsDir: string,
    name: string,
    logOptions: LogOptions,
  ): Promise<Stream> {
    const dir = join(streamsDir, name);
    await fs.mkdir(dir);
    const statePath = join(dir, 'stream.state');
    let state = (await readAtomicJson(fs, statePath)) as StreamState | undefined;
    if (!state) {
      state = { version: 1, incarnation: newIncarnation(randomBytes), createdAt: Date.now() };
      await writeAtomicJson(fs, statePath, state);
    }
    const log = await Log.open(dir, { ...logOptions, fileSystem: fs });
    return new Stream(name, state.incarnation, log);
  }

  get firstSeq(): number {
    return this.log.firstSeq;
  }

  get lastSeq(): number {
    return this.log.lastSeq;
  }

  /** The log's segments: seq ranges with their time bounds. */
  async chunks(): Promise<StreamChunk[]> {
    return this.log.segmentInfos();
  }

  bytesFrom(seq: number): Promise<number> {
    return this.log.bytesFrom(seq);
  }

  stats(): StreamStats {
    const { firstSeq, lastSeq, records, bytes } = this.log.stats();
    return { firstSeq, lastSeq, records, bytes };
  }

  idOf(seq: number): string {
    return messageId(this.incarnation, seq);
  }

  /** Appends messages as one all-or-nothing unit; resolves once durable. */
  async append(inputs: readonly PublishInput[]): Promise<PublishedRef[]> {
    const records: AppendInput[] = inputs.map((input) => ({
      payload: input.payload,
      meta: encodeMeta({
        key: input.key,
        headers: input.headers ?? {},
        expiresAt: input.expiresAt,
        idempotencyKey: input.idempotencyKey,
        fingerprint: input.fingerprint,
      }),
    }));
    const { firstSeq } = await this.log.append(records);
    return inputs.map((_, i) => ({ id: this.idOf(firstSeq + i), stream: this.name, seq: firstSeq + i }));
  }

  async read(options: ReadMessagesOptions): Promise<StoredMessage[]> {
    const records = await this.log.read({
      fromSeq: options.fromSeq,
      direction: options.direction,
      maxRecords: options.maxMessages,
      maxBytes: options.maxBytes,
      untilSeq: options.untilSeq,
    });
    return records.map((r) => this.toMessage(r));
  }

  toMessage(record: LogRecord): StoredMessage {
    const meta = decodeMeta(record.meta);
    return {
      id: this.idOf(record.seq),
      stream: this.name,
      seq: record.seq,
      timestamp: record.timestamp,
      key: meta.key,
      headers: meta.headers,
      expiresAt: meta.expiresAt,
      idempotencyKey: meta.idempotencyKey,
      fingerprint: meta.fingerprint,
      payload: record.payload,
      payloadBytes: record.payloadBytes,
      blob: record.blob,
    };
  }

  /** The payload of a message as a stream (side file or memory). */
  openPayload(message: StoredMessage): Readable {
    return this.log.openPayload({ ...message, meta: EMPTY });
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
