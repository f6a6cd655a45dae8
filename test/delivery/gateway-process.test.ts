/**
 * A real gateway process with an HTTP target: the receiver goes away and comes back, and the
 * gateway is SIGKILLed during the drain and restarted. Every acknowledged message must reach the
 * receiver, first deliveries in publish order (fifo), and duplicates only of the few messages
 * whose delivery was not yet recorded when the process died.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Receiver } from '../support/receiver.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

const child = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));

interface Running {
  proc: ChildProcess;
  acked: Map<number, string>;
  line: (pred: (l: string) => boolean) => Promise<void>;
}

function startGateway(dataDir: string, url: string, count: number, start = 0): Running {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', child, dataDir, url, String(count), String(start)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const acked = new Map<number, string>();
  const waiters: { pred: (l: string) => boolean; resolve: () => void }[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const [kind, n, id] = l.split(' ');
    if (kind === 'ack') acked.set(Number(n), id!);
    for (const w of [...waiters]) if (w.pred(l)) waiters.splice(waiters.indexOf(w), 1) && w.resolve();
  });
  return {
    proc,
    acked,
    line: (pred) => new Promise<void>((resolve) => waiters.push({ pred, resolve })),
  };
}

describe('gateway process', () => {
  it('delivers every acknowledged message across a receiver outage and a SIGKILL during the drain', async () => {
    const dir = await tempDir('ws-proc-');
    const dataDir = join(dir, 'data');
    const receiver = await new Receiver().start();
    const port = receiver.port;
    const seen: number[] = [];
    receiver.respond = (req, res) => {
      seen.push(Number(req.body.toString()));
      res.writeHead(200).end();
    };

    const first = startGateway(dataDir, receiver.url, 600);
    await first.line((l) => l.startsWith('ack 100 '));
    await receiver.stop(); // the receiver goes away while publishing goes on
    await first.line((l) => l === 'published');
    const whileDown = seen.length;
    expect(whileDown).toBeLessThan(500);
    await receiver.start(port);
    // Kill the gateway once the drain is under way.
    await until(() => seen.length > whileDown + 50, 20_000, 'the drain to start');
    first.proc.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));

    const second = startGateway(dataDir, receiver.url, 0);
    await second.line((l) => l === 'published');
    await until(() => new Set(seen).size >= 600, 30_000, 'all messages at the receiver');
    second.proc.kill('SIGTERM');
    await new Promise((r) => second.proc.once('exit', r));
    await receiver.stop();

    expect(first.acked.size).toBe(600);
    const distinct = new Set(seen);
    for (const n of first.acked.keys()) expect(distinct.has(n)).toBe(true);
    // fifo: first deliveries in publish order.
    const firsts = seen.filter((n, i) => seen.indexOf(n) === i);
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
    // Duplicates: only messages delivered just before the kill, whose delivery was not yet saved.
    const duplicates = seen.filter((n, i) => seen.indexOf(n) !== i);
    expect(duplicates.length).toBeLessThan(100);
  }, 90_000);
});
