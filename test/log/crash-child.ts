/**
 * Child process of the crash test: appends records with fsync: always from several concurrent
 * appenders and prints one line per acknowledged append, until it is killed.
 *   ack <firstSeq> <id>:<length>,<id>:<length>...
 * Payload bytes are derived from the id (test/support/payload.ts) so the parent can check them.
 */
import { Log } from '../../src/log/index.js';
import { payloadFor, seededRandom } from '../support/payload.js';
import { CRASH_LOG_OPTIONS } from './crash-options.js';

const [dir, seedArg] = process.argv.slice(2);
if (!dir || !seedArg) throw new Error('usage: crash-child <dir> <seed>');
const seed = Number(seedArg);
const random = seededRandom(seed);
const log = await Log.open(dir, CRASH_LOG_OPTIONS);
process.stdout.write('ready\n');

let counter = 0;
async function appender(): Promise<never> {
  for (;;) {
    const batch: { id: string; length: number }[] = [];
    const size = 1 + Math.floor(random() * 3);
    for (let i = 0; i < size; i++) {
      const big = random() < 0.05;
      const length = big ? 8_000 + Math.floor(random() * 40_000) : Math.floor(random() * 2_000);
      batch.push({ id: `${seed}-${counter++}`, length });
    }
    const { firstSeq } = await log.append(
      batch.map((b) => ({ payload: payloadFor(b.id, b.length), meta: Buffer.from(b.id) })),
    );
    process.stdout.write(`ack ${firstSeq} ${batch.map((b) => `${b.id}:${b.length}`).join(',')}\n`);
  }
}

await Promise.all([appender(), appender(), appender(), appender()]);
