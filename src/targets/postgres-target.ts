/**
 * PostgreSQL: one multi-row `INSERT … ON CONFLICT (id) DO NOTHING` per batch, in a transaction;
 * `ack` after COMMIT. The message id is the primary key, so a redelivery never inserts twice.
 * Columns: id text PK, stream text, seq bigint, key text, headers jsonb, ts timestamptz,
 * payload bytea. With `createTable` (default) the table is created if missing.
 */
import pg from 'pg';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, nack, permanentError } from '../delivery/target.js';
import { payloadBytes } from './template.js';

export interface PostgresTargetOptions {
  connectionString: string;
  table?: string;
  createTable?: boolean;
  timeoutMs?: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

export class PostgresTarget implements Target {
  readonly type = 'postgres';
  private readonly pool: pg.Pool;
  private readonly table: string;
  private tableReady = false;

  constructor(private readonly options: PostgresTargetOptions) {
    const table = options.table ?? 'waystation_messages';
    if (!IDENTIFIER.test(table)) throw new Error(`table "${table}" is not a plain [schema.]name identifier`);
    this.table = table
      .split('.')
      .map((p) => `"${p}"`)
      .join('.');
    const timeout = options.timeoutMs ?? 10_000;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: 4,
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
    });
    // A client losing its connection (idle or checked out) surfaces as a failed query of the
    // delivery that uses it; the event itself must not crash the process.
    this.pool.on('error', () => {});
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  private async ensureTable(client: pg.PoolClient): Promise<void> {
    if (this.tableReady || this.options.createTable === false) return;
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${this.table} (id text PRIMARY KEY, stream text NOT NULL, seq bigint NOT NULL, key text, headers jsonb NOT NULL, ts timestamptz NOT NULL, payload bytea NOT NULL)`,
    );
    this.tableReady = true;
  }

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      return batch.map(() => nack(`postgres: cannot connect: ${(err as Error).message}`));
    }
    try {
      await this.ensureTable(client);
      const values: unknown[] = [];
      const rows: string[] = [];
      for (const d of batch) {
        const n = values.length;
        rows.push(
          `($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, to_timestamp($${n + 6} / 1000.0), $${n + 7})`,
        );
        values.push(
          d.id,
          d.stream,
          d.seq,
          d.key ?? null,
          JSON.stringify(d.headers),
          d.timestamp,
          // In-memory payloads without an await each (a batch is 1000 of them).
          d.payload ?? (await payloadBytes(d)),
        );
      }
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO ${this.table} (id, stream, seq, key, headers, ts, payload) VALUES ${rows.join(', ')} ON CONFLICT (id) DO NOTHING`,
        values,
      );
      await client.query('COMMIT');
      client.release();
      return batch.map(() => ack);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      const e = err as Error & { code?: string };
      const reason = `postgres: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}`;
      // Class 22 (data exception): this batch will never insert. Anything else (connection,
      // resources, a missing table an operator can create) is worth keeping and retrying.
      return batch.map(() => (e.code?.startsWith('22') ? permanentError(reason) : nack(reason)));
    }
  }

  async stop(): Promise<void> {
    await this.pool.end();
  }
}
