/**
 * Child process of the real-process test: a Waystation with an HTTP target. With a count > 0
 * it publishes that many numbered messages (printing `ack <n> <id>` once each is durable), then
 * keeps delivering until killed.
 */
import { pino } from 'pino';
import { Waystation } from '../../src/index.js';

const [dataDir, url, countArg, startArg] = process.argv.slice(2);
const ws = await Waystation.open(
  {
    dataDir: dataDir!,
    targets: { receiver: { type: 'http', url: url!, timeout: '2s' } },
    routes: {
      r: {
        streams: ['s'],
        target: 'receiver',
        probeInterval: '100ms',
        probeIntervalMax: '400ms',
        timeout: '3s',
      },
    },
  },
  { logger: pino({ level: 'silent' }) },
);
process.stdout.write('ready\n');
const count = Number(countArg);
const start = Number(startArg ?? 0);
for (let n = start; n < start + count; n++) {
  const { id } = await ws.publish('s', Buffer.from(String(n)), { headers: { 'content-type': 'text/plain' } });
  process.stdout.write(`ack ${n} ${id}\n`);
  // Paced, so the parent can take the receiver away while publishing goes on.
  await new Promise((r) => setTimeout(r, 2));
}
process.stdout.write('published\n');
