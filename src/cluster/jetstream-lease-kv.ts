/**
 * The `LeaseKv` of route leases on a JetStream KV bucket (one bucket for all routes; key =
 * route name, whose characters `[A-Za-z0-9_-]` are all valid KV key characters). The bucket's `ttl` (stream `max_age`) is the lease TTL: an entry disappears
 * `leaseTtlMs` after its last write, so a lease nobody renews frees itself. `history: 1`, since
 * only the latest entry matters; the revision (the stream sequence of the write) is the fencing
 * token. Writes are JetStream publishes with an expected last subject sequence, so create and
 * compare-and-set are decided by the stream's leader, and answered only once replicated.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConfigError } from '../errors.js';
import type { KvWriteResult, LeaseEntry, LeaseKv, LeaseValue } from './lease.js';

export interface LeaseBucketOptions {
  /** Bucket name. Default `waystation_leases`. */
  bucket?: string;
  /** Entries expire this long after their last write: `cluster.leaseTtl`. Required. */
  leaseTtlMs: number;
  /** Replicas of the bucket's stream: `cluster.nats.replicas`. Default 3. */
  replicas?: number;
}

const isConflict = (err: unknown) =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
    err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class JetStreamLeaseKv implements LeaseKv {
  readonly bucket: string;
  private readonly kv: KV;

  private constructor(bucket: string, kv: KV) {
    this.bucket = bucket;
    this.kv = kv;
  }

  /**
   * Creates the bucket (or opens it if it exists). An existing bucket whose TTL differs from
   * `leaseTtlMs` is refused: a shorter one would let a lease expire while its owner still sends.
   */
  static async open(nc: NatsConnection, options: LeaseBucketOptions): Promise<JetStreamLeaseKv> {
    const bucket = options.bucket ?? 'waystation_leases';
    const kvm = new Kvm(nc);
    let kv: KV;
    try {
      kv = await kvm.create(bucket, { ttl: options.leaseTtlMs, replicas: options.replicas ?? 3, history: 1 });
    } catch (err) {
      // Exists with another configuration: open it and say how it differs.
      kv = await kvm.open(bucket).catch(() => Promise.reject(err));
    }
    const status = await kv.status();
    if (status.ttl !== options.leaseTtlMs) {
      throw new ConfigError([
        {
          path: 'cluster.leaseTtl',
          message:
            `the lease bucket ${bucket} has a TTL of ${status.ttl} ms but this node is configured with ` +
            `${options.leaseTtlMs} ms; every node must use the same cluster.leaseTtl (or delete the bucket while ` +
            'no node runs, so it is created again)',
        },
      ]);
    }
    return new JetStreamLeaseKv(bucket, kv);
  }

  async create(key: string, value: LeaseValue): Promise<KvWriteResult> {
    try {
      return { ok: true, revision: await this.kv.create(key, encode(value)) };
    } catch (err) {
      if (isConflict(err)) return { ok: false };
      throw err;
    }
  }

  async update(key: string, value: LeaseValue, revision: number): Promise<KvWriteResult> {
    try {
      return { ok: true, revision: await this.kv.update(key, encode(value), revision) };
    } catch (err) {
      if (isConflict(err)) return { ok: false };
      throw err;
    }
  }

  async get(key: string): Promise<LeaseEntry | null> {
    const e = await this.kv.get(key);
    if (e === null || e.operation !== 'PUT') return null;
    const value = decode(e.value);
    return value === undefined ? null : { value, revision: e.revision };
  }

  async delete(key: string, revision: number): Promise<void> {
    try {
      await this.kv.delete(key, { previousSeq: revision });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
}

function encode(v: LeaseValue): Uint8Array {
  return encoder.encode(JSON.stringify({ owner: v.owner, nonce: v.nonce }));
}

/** An entry that is not a lease value (written by something else) reads as no lease. */
function decode(bytes: Uint8Array): LeaseValue | undefined {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as Partial<LeaseValue>;
    return typeof v.owner === 'string' && typeof v.nonce === 'string'
      ? { owner: v.owner, nonce: v.nonce }
      : undefined;
  } catch {
    return undefined;
  }
}
