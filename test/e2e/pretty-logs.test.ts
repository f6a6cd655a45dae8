/**
 * Logs are readable lines on a terminal and JSON otherwise (docs/gateway.md): `waystation start`
 * in a real terminal (a tmux pane on a private socket) prints pino-pretty lines; piped, the same
 * command prints JSON lines (startCli parses those everywhere else).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repo, startCli, stopCli, writeConfig } from '../support/cli.js';

const run = promisify(execFile);
const socket = `ws-logs-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]);
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

afterAll(async () => {
  await tmux('kill-server').catch(() => {});
});

describe.skipIf(!hasTmux())('gateway logs', () => {
  it('are readable lines on a terminal and JSON when piped', async () => {
    const config = await writeConfig({});
    const command = `cd ${shellQuote(repo)} && WAYSTATION_LOG_LEVEL=info ${shellQuote(process.execPath)} --import tsx src/cli/main.ts start --config ${shellQuote(config)}; sleep 30`;
    await tmux('new-session', '-d', '-s', 'logs', '-x', '200', '-y', '40', command);
    let screen = '';
    const deadline = Date.now() + 30_000;
    while (!screen.includes('waystation listening on')) {
      if (Date.now() > deadline) throw new Error(`no start within 30 s:\n${screen}`);
      await new Promise((r) => setTimeout(r, 50));
      screen = (await tmux('capture-pane', '-p', '-t', 'logs')).stdout;
    }
    await tmux('send-keys', '-t', 'logs', 'C-c');
    const line = screen.split('\n').find((l) => l.includes('waystation listening on'))!;
    expect(line).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): waystation listening on http:\/\/127\.0\.0\.1:\d+$/,
    );
    expect(screen).not.toContain('{"level"');

    // Its own data directory: the terminal's gateway may still be shutting down.
    const piped = await startCli(['--config', await writeConfig({})]);
    const listening = piped.logs.find((l) => l.includes('waystation listening on'))!;
    expect(JSON.parse(listening)).toMatchObject({ level: 30, msg: expect.stringContaining('listening') });
    await stopCli(piped.proc);
  }, 60_000);
});
