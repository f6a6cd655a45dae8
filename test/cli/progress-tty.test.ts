/**
 * The progress bar on a real terminal: the CLI runs in a tmux pane (its own tmux server on a
 * private socket), the pane is captured while it works. The same commands with stderr not a
 * terminal, or with --json, print no bar.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { cli, repo } from '../support/cli.js';
import { startGateway } from '../support/gateway.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const socket = `ws-progress-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]);

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});
afterAll(async () => {
  // Only the tmux server this file started (its own socket).
  await tmux('kill-server').catch(() => {});
});

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI in a fresh 150×20 tmux pane; returns every distinct screen seen until it exits. */
async function inTerminal(name: string, args: string[], redirect = ''): Promise<string[]> {
  const command = [
    `cd ${shellQuote(repo)} &&`,
    `WAYSTATION_LOG_LEVEL=warn ${shellQuote(process.execPath)} --import tsx src/cli/main.ts`,
    ...args.map(shellQuote),
    redirect,
    '; echo "EXIT=$?"; sleep 30',
  ].join(' ');
  await tmux('new-session', '-d', '-s', name, '-x', '150', '-y', '20', command);
  const screens: string[] = [];
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      const { stdout } = await tmux('capture-pane', '-p', '-t', name);
      if (screens.at(-1) !== stdout) screens.push(stdout);
      if (/EXIT=\d+/.test(stdout)) return screens;
      if (Date.now() > deadline) throw new Error(`no exit within 60 s; screens:\n${screens.join('\n---\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    await tmux('kill-session', '-t', name).catch(() => {});
  }
}

describe.skipIf(!hasTmux())('progress bar on a terminal (tmux)', () => {
  it('shows export and import progress with rate and ETA on a terminal, and nothing when piped or with --json', {
    timeout: 180_000,
  }, async () => {
    ({ gw } = await startGateway({ streams: { big: {}, copy: {} } }));
    const payload = 'x'.repeat(600);
    for (let i = 0; i < 60_000; i += 5000)
      await gw.ws.publishBatch(
        'big',
        Array.from({ length: 5000 }, (_, j) => ({ payload: `${i + j} ${payload}` })),
      );
    const dir = await tempDir();
    const file = join(dir, 'big.ndjson');
    const url = gw.url;

    const exportScreens = await inTerminal('export', [
      'export',
      '--stream',
      'big',
      '--out',
      file,
      '--url',
      url,
    ]);
    const working = exportScreens.filter((s) =>
      /export big +\[#*-*\] +\d+% +[\d,]+\/60,000 messages/.test(s),
    );
    expect(working.length, exportScreens.join('\n---\n')).toBeGreaterThan(0);
    expect(working.some((s) => /[\d,]+ msg\/s +ETA \d+:\d\d/.test(s))).toBe(true);
    const done = exportScreens.at(-1)!;
    expect(done).toMatch(/export big {2}60,000 messages in \d+:\d\d {2}[\d,]+ msg\/s/);
    expect(done).toContain(`exported 60000 messages (stream big) to ${file}`);
    expect(done).toContain('EXIT=0');

    // A file of 3,000 messages to import (one durable publish per line: slower than export).
    const small = join(dir, 'small.ndjson');
    const lines = (await readFile(file, 'utf8')).split('\n').slice(0, 3000);
    await import('node:fs/promises').then((fs) => fs.writeFile(small, `${lines.join('\n')}\n`));
    const importScreens = await inTerminal('import', ['import', '--stream', 'copy', small, '--url', url]);
    expect(
      importScreens.some((s) =>
        /import copy +\[#*-*\] +\d+% +[\d.]+ MB\/[\d.]+ MB +[\d.]+ (KB|MB)\/s +ETA \d+:\d\d/.test(s),
      ),
      importScreens.join('\n---\n'),
    ).toBe(true);
    expect(importScreens.at(-1)).toContain('imported 3000 messages into copy (0 already there, 0 expired)');

    // stderr to a file: stdout is still the terminal, but no bar is drawn.
    const errFile = join(dir, 'stderr.txt');
    const piped = await inTerminal(
      'piped',
      ['export', '--stream', 'big', '--out', join(dir, 'again.ndjson'), '--url', url],
      `2>${shellQuote(errFile)}`,
    );
    expect(await readFile(errFile, 'utf8')).toBe('');
    expect(piped.every((s) => !/ETA|msg\/s/.test(s))).toBe(true);
    expect(piped.at(-1)).toContain('exported 60000 messages');

    // --json on a terminal: no bar either.
    const json = await inTerminal('json', [
      'export',
      '--stream',
      'big',
      '--out',
      join(dir, 'j.ndjson'),
      '--url',
      url,
      '--json',
    ]);
    expect(json.every((s) => !/ETA|msg\/s/.test(s))).toBe(true);
    expect(json.at(-1)).toContain('"exported": 60000');

    // And through a pipe altogether (the test's own child process).
    const res = await cli(['export', '--stream', 'big', '--out', join(dir, 'p.ndjson'), '--url', url]);
    expect(res.stderr).toBe('');
  });

  it('shows a purge in steps on a terminal', { timeout: 120_000 }, async () => {
    ({ gw } = await startGateway({
      streams: { s: {} },
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['s'], target: 't' } },
    }));
    await gw.ws.route('r').store();
    for (let i = 0; i < 200_000; i += 10_000)
      await gw.ws.publishBatch(
        's',
        Array.from({ length: 10_000 }, (_, j) => ({ payload: `${i + j}` })),
      );
    const screens = await inTerminal('purge', ['purge', 'r', '--url', gw.url]);
    expect(screens.at(-1)).toContain('r: 200000 messages purged');
    expect(screens.at(-1)).toMatch(/purge r {2}200,000 messages in \d+:\d\d/);
  });
});
