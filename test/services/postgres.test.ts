import pg from 'pg';
import { afterAll } from 'vitest';
import { describeTargetContract } from './contract.js';

const URL = 'postgres://postgres@127.0.0.1:5432/test';
const pool = new pg.Pool({ connectionString: URL, max: 2 });
afterAll(() => pool.end());

describeTargetContract({
  name: 'postgres',
  server: { name: 'PostgreSQL', host: '127.0.0.1', port: 5432 },
  target: (port, ns) => ({
    type: 'postgres',
    connectionString: `postgres://postgres@127.0.0.1:${port}/test`,
    table: ns,
    timeout: '2s',
  }),
  async readBack(ns) {
    const { rows } = await pool.query<{ payload: Buffer }>(`SELECT payload FROM "${ns}" ORDER BY seq`);
    return rows.map((r) => r.payload.toString());
  },
  cleanup: async (ns) => {
    await pool.query(`DROP TABLE IF EXISTS "${ns}"`);
  },
  exactlyOnce: true,
  ordered: false,
});
