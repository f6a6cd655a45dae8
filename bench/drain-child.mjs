// One drain for bench/forward.ts, in its own process on the built gateway (dist/), as a gateway
// that restarts with a backlog runs it: opens the Waystation on argv[2]'s config (JSON), forwards
// the held route `drain` until it is empty, and reports { seconds, forwarded, maxRssMb } over IPC.
// maxRssMb is this process's peak resident set (getrusage), start-up included.
import { pino } from 'pino';
import { Waystation } from '../dist/index.js';

const config = JSON.parse(process.argv[2]);
const expected = Number(process.argv[3]);
const ws = await Waystation.open(config, { logger: pino({ level: 'silent' }) });
const route = ws.route('drain');
const started = performance.now();
route.forward();
for (;;) {
  const snap = await route.snapshot();
  if (snap.inQueue + snap.inFlight === 0 && snap.forwarded >= expected) break;
  await new Promise((r) => setTimeout(r, 20));
}
const seconds = (performance.now() - started) / 1000;
const { forwarded } = await route.snapshot();
await ws.close();
process.send({ seconds, forwarded, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) });
process.disconnect();
