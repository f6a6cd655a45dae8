/**
 * Crash test: a child process appends with fsync: always and reports each acknowledged append;
 * the parent SIGKILLs it at a random moment, reopens the log and checks that every acknowledged
 * record is there with identical bytes, that no partial record is visible, and that sequence
 * numbers stay contiguous. Rounds accumulate in one directory, so recovery of recovered logs is
 * exercised too. WAYSTATION_CRASH_ROUNDS sets the number of rounds (default 20).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Log } from '../../src/log/index.js';
import { payloadFor, seededRandom } from '../support/payload.js';
import { tempDir } from '../support/tmp.js';
import { CRASH_LOG_OPTIONS } from './crash-options.js';

const ROUNDS = Number(process.env.WAYSTATION_CRASH_ROUNDS ?? 20);
const child = fileURLToPath(new URL('./crash-child.ts', import.meta.url));

interface Acked {
  seq: number;
  id: string;
  length: number;
}

async function runChildUntilKilled(dir: string, seed: number, killAfterMs: number): Promise<Acked[]> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, dir, String(seed)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked: Acked[] = [];
  const lines = createInterface({ input: proc.stdout });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  lines.on('line', (line) => {
    if (line === 'ready') {
      setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      return;
    }
    const [, first, list] = line.split(' ');
    let seq = Number(first);
    for (const entry of list!.split(',')) {
      const [id, length] = entry.split(':');
      acked.push({ seq: seq++, id: id!, length: Number(length) });
    }
  });
  const watchdog = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(watchdog);
  return acked;
}

describe('crash safety', () => {
  it(
    `keeps every acknowledged record across ${ROUNDS} SIGKILLs mid-write`,
    async () => {
      const dir = await tempDir('ws-crash-');
      const random = seededRandom(Number(process.env.WAYSTATION_CRASH_SEED ?? Date.now()));
      const everAcked = new Map<number, Acked>();
      let total = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const acked = await runChildUntilKilled(dir, round + 1, 30 + Math.floor(random() * 400));
        for (const a of acked) everAcked.set(a.seq, a);
        total += acked.length;

        const log = await Log.open(dir, CRASH_LOG_OPTIONS);
        try {
          const stats = log.stats();
          expect(stats.corruptRecords).toBe(0);
          const maxAcked = Math.max(0, ...everAcked.keys());
          expect(stats.lastSeq).toBeGreaterThanOrEqual(maxAcked);
          let expectedSeq = 1;
          for (let from = 1; from <= stats.lastSeq; ) {
            const records = await log.read({ fromSeq: from, maxRecords: 500 });
            for (const r of records) {
              // Contiguous: nothing missing, nothing partial.
              expect(r.seq).toBe(expectedSeq++);
              const id = r.meta.toString();
              const bytes = r.payload ?? (await buffer(log.openPayload(r)));
              expect(bytes.equals(payloadFor(id, bytes.byteLength))).toBe(true);
              const ack = everAcked.get(r.seq);
              if (ack) {
                expect(id).toBe(ack.id);
                expect(bytes.byteLength).toBe(ack.length);
              }
            }
            from = records.at(-1)!.seq + 1;
          }
          expect(expectedSeq - 1).toBe(stats.lastSeq);
        } finally {
          await log.close();
        }
      }
      // The test means something only if the child got appends acknowledged.
      expect(total).toBeGreaterThan(ROUNDS);
    },
    ROUNDS * 15_000,
  );
});
