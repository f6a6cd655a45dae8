/**
 * Soak (`npm run test:soak`; not part of `npm test` or CI): a real gateway process under HTTP
 * publish load from 16 producers, a fifo route to an HTTP receiver that flaps (down: port
 * closed; stalled: requests read and never answered; up) and SIGKILLs of the gateway, round
 * after round. At the end the receiver stays up and the gateway is restarted once more.
 *
 * Checked (issue 15, "a route with a backlog and a reachable target always makes progress"):
 * - every message answered 202 reaches the receiver after the last restart, with no second
 *   without a delivery while some are missing, within WAYSTATION_SOAK_DRAIN_MS;
 * - in every round the receiver is up and the route has a backlog, deliveries are answered;
 * - no attempt is ever seen older than the route timeout + 1 s (route snapshot
 *   `oldestAttemptMs`), and the watchdog never reports one (`overdueAttempts`).
 *
 * Size: WAYSTATION_SOAK_ROUNDS (default 40), WAYSTATION_SOAK_ROUND_MS (mean round length,
 * default 2000), WAYSTATION_SOAK_RATE (publishes per second per producer, default 10; 0 = as
 * fast as the gateway answers), WAYSTATION_SOAK_DRAIN_MS (default 30 000). Figures are printed.
 */
import type { ChildProcess } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startCli, stopCli, writeConfig } from '../support/cli.js';
import { Receiver } from '../support/receiver.js';

const ROUNDS = Number(process.env.WAYSTATION_SOAK_ROUNDS ?? 40);
const ROUND_MS = Number(process.env.WAYSTATION_SOAK_ROUND_MS ?? 2000);
const RATE = Number(process.env.WAYSTATION_SOAK_RATE ?? 10);
const DRAIN_MS = Number(process.env.WAYSTATION_SOAK_DRAIN_MS ?? 30_000);
const PRODUCERS = 16;
const TIMEOUT_MS = 2000;

type Mode = 'up' | 'down' | 'stalled';
interface Gw {
  proc: ChildProcess;
  url: string;
  logs: string[];
}
interface RouteSnap {
  state?: string;
  inFlight?: number;
  inQueue?: number;
  oldestAttemptMs?: number;
  overdueAttempts?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function snapshot(gw: Gw): Promise<RouteSnap> {
  return (await fetch(`${gw.url}/v1/routes/r`)
    .then((r) => r.json())
    .catch(() => ({}))) as RouteSnap;
}

async function kill(gw: Gw): Promise<void> {
  const exited = new Promise((r) => gw.proc.once('exit', r));
  if (gw.proc.exitCode === null && gw.proc.signalCode === null) gw.proc.kill('SIGKILL');
  else return;
  await exited;
}

describe('soak: receiver flaps and SIGKILLs under HTTP load', () => {
  it(
    'delivers every 202-answered message, making progress whenever the receiver is up',
    async () => {
      const receiver = await new Receiver().start();
      const port = receiver.port;
      const seen = new Set<number>();
      let requests = 0;
      let answered = 0;
      let mode: Mode = 'up';
      const stalled: ServerResponse[] = [];
      receiver.respond = (req, res) => {
        requests++;
        if (mode === 'stalled') {
          stalled.push(res); // the gateway's request is read and never answered
          return;
        }
        seen.add(Number(req.body.toString()));
        answered++;
        res.writeHead(200).end();
      };
      const setMode = async (next: Mode) => {
        if (next === mode) return;
        if (mode === 'down') await receiver.start(port);
        if (mode === 'stalled') for (const res of stalled.splice(0)) res.destroy();
        if (next === 'down') await receiver.stop();
        mode = next;
      };

      const config = await writeConfig({
        storage: { segmentBytes: '256KiB' },
        targets: { rx: { type: 'http', url: receiver.url, timeout: '2s' } },
        routes: {
          r: {
            streams: ['s'],
            target: 'rx',
            ordering: 'fifo',
            probeInterval: '200ms',
            probeIntervalMax: '1s',
            timeout: `${TIMEOUT_MS}ms`,
          },
        },
      });
      const violations: string[] = [];
      let overdue = 0;
      let oldestSeen = 0;
      const look = (s: RouteSnap, when: string) => {
        oldestSeen = Math.max(oldestSeen, s.oldestAttemptMs ?? 0);
        if ((s.oldestAttemptMs ?? 0) > TIMEOUT_MS + 1000)
          violations.push(`${when}: an attempt in flight for ${s.oldestAttemptMs} ms`);
      };
      const start = () => startCli(['--config', config]);
      let gw: Gw = await start();

      const accepted: number[] = [];
      let next = 0;
      let producing = true;
      let cut = 0;
      const producer = async () => {
        while (producing) {
          const n = next++;
          const res = await fetch(`${gw.url}/v1/streams/s/messages`, {
            method: 'POST',
            body: String(n),
            headers: { 'content-type': 'text/plain' },
          }).catch(() => undefined);
          if (res?.status === 202) accepted.push(n);
          else {
            cut++;
            if (res && res.status !== 503)
              violations.push(`publish answered ${res.status}: ${await res.text()}`);
            await sleep(20); // the gateway is restarting
          }
          await res?.arrayBuffer().catch(() => undefined);
          if (RATE > 0) await sleep(1000 / RATE);
        }
      };
      const producers = Array.from({ length: PRODUCERS }, producer);

      const modes: Mode[] = ['down', 'up', 'stalled', 'up'];
      const rounds: string[] = [];
      const started = Date.now();
      for (let round = 0; round < ROUNDS; round++) {
        await setMode(modes[round % modes.length]!);
        const before = seen.size;
        const answeredBefore = answered;
        const backlog = accepted.some((n) => !seen.has(n));
        await sleep(ROUND_MS * (0.5 + Math.random()));
        const s = await snapshot(gw);
        look(s, `round ${round}`);
        overdue += s.overdueAttempts ?? 0;
        const delivered = seen.size - before;
        // Progress while the receiver is up: deliveries answered (a redelivery of what was at the
        // receiver when the gateway was killed counts: under heavy load a short round may see
        // only those), never nothing.
        if (mode === 'up' && backlog && answered === answeredBefore)
          violations.push(`round ${round}: receiver up, backlog, no delivery (${JSON.stringify(s)})`);
        rounds.push(`${mode}:+${delivered}/${s.state}`);
        await kill(gw);
        gw = await start();
      }
      // The last round: the receiver answers everything; load goes on for a moment, then stops.
      await setMode('up');
      await sleep(ROUND_MS);
      await kill(gw);
      producing = false;
      await Promise.all(producers);
      gw = await start();
      const restartedAt = Date.now();
      const missing = () => accepted.filter((n) => !seen.has(n)).length;
      const backlogAtRestart = missing();
      const perSecond: number[] = [];
      let counted = seen.size;
      let tick = restartedAt;
      while (missing() > 0 && Date.now() - restartedAt < DRAIN_MS) {
        await sleep(50);
        if (Date.now() - tick >= 1000) {
          perSecond.push(seen.size - counted);
          counted = seen.size;
          tick += 1000;
          look(await snapshot(gw), `drain second ${perSecond.length}`);
        }
      }
      const drainMs = Date.now() - restartedAt;
      const left = missing();
      const final = await snapshot(gw);
      overdue += final.overdueAttempts ?? 0;
      for (let i = 1; i < perSecond.length; i++)
        if (perSecond[i] === 0 && perSecond[i - 1] === 0)
          violations.push(`drain: no delivery in seconds ${i} and ${i + 1} after the last restart`);
      const figures = {
        rounds: ROUNDS,
        seconds: Math.round((Date.now() - started) / 1000),
        accepted: accepted.length,
        cutOrRefused: cut,
        receiverRequests: requests,
        distinctDelivered: seen.size,
        duplicates: requests - seen.size,
        backlogAtLastRestart: backlogAtRestart,
        drainAfterLastRestartMs: drainMs,
        deliveredPerSecondAfterLastRestart: perSecond,
        missing: left,
        oldestAttemptSeenMs: oldestSeen,
        overdueAttempts: overdue,
        rounds_: rounds.join(' '),
      };
      console.log(`soak figures: ${JSON.stringify(figures)}`);
      if (left > 0 || violations.length > 0) {
        console.log(`route at the end: ${JSON.stringify(final)}`);
        console.log(`gateway log tail:\n${gw.logs.slice(-20).join('\n')}`);
      }
      await stopCli(gw.proc);
      await setMode('up');
      await receiver.stop();
      expect(violations).toEqual([]);
      expect(left).toBe(0);
      expect(overdue).toBe(0);
    },
    24 * 60 * 60 * 1000,
  );
});
