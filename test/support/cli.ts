import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { tempDir } from './tmp.js';

export const repo = fileURLToPath(new URL('../..', import.meta.url));
const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `waystation <args>` (from source) to completion. */
export function cli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', main, ...args],
      { cwd: repo, env: { ...process.env, WAYSTATION_LOG_LEVEL: 'warn', ...options.env }, timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
    else child.stdin!.end();
  });
}

/** Starts `waystation start ...` and resolves once it logs its URL. */
export async function startCli(
  args: readonly string[],
): Promise<{ proc: ChildProcess; url: string; logs: string[]; mqtt: string | undefined }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', main, 'start', ...args], {
    cwd: repo,
    env: { ...process.env, WAYSTATION_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${logs.join('\n')}`)), 20_000);
    proc.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${logs.join('\n')}`)));
    createInterface({ input: proc.stderr! }).on('line', (l) => logs.push(l));
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      logs.push(l);
      const m = /"url":"([^"]+)"/.exec(l);
      if (m && l.includes('listening')) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const mqtt = logs.map((l) => /"tcp":"(mqtt:\/\/[^"]+)"/.exec(l)?.[1]).find((u) => u !== undefined);
  return { proc, url, logs, mqtt };
}

/** Writes a gateway configuration (data in ./data, an ephemeral loopback port) to a temp dir. */
export async function writeConfig(config: object): Promise<string> {
  const dir = await tempDir('ws-e2e-');
  const path = join(dir, 'waystation.yaml');
  await writeFile(path, stringify({ dataDir: './data', http: { listen: '127.0.0.1:0' }, ...config }));
  return path;
}

/** Signals a gateway started by startCli and waits for it to exit (before its temp dir is removed). */
export async function stopCli(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  await exited;
}
