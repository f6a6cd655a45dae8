/**
 * The real `waystation start` process: start-up failures are one line naming the path, the cause
 * and the code; a stale LOCK does not block a start; SIGTERM on a full disk still exits 0.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, open, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, repo, startCli, writeConfig } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;
const ONE_LINE = /^waystation: [^\n]+ \(WS_ERR_[A-Z_]+\)\n$/;

const procs: ChildProcess[] = [];
const mounts: string[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGKILL');
      await exited;
    }
  }
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
});

function exitOf(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

describe('waystation start: what happened, in one line', () => {
  it('dataDir is a file: one line with the path, the cause, what to do and the code; no stack', async () => {
    const config = await writeConfig({});
    const file = join(dirname(config), 'data');
    await writeFile(file, 'not a directory');
    const res = await cli(['start', '--config', config]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(ONE_LINE);
    expect(res.stderr).toBe(
      `waystation: The data directory ${file} cannot be used: ${file} is a file, not a directory (EEXIST). Move the file away, or point dataDir (--data-dir) at another directory. (WS_ERR_DATA_DIR_UNUSABLE)\n`,
    );
  });

  it.runIf(linux && root)('dataDir owned by another user: EACCES names the user and the owner', async () => {
    const dir = await tempDir('ws-e2e-');
    await chmod(dir, 0o755);
    const dataDir = join(dir, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    const res = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      // A real unprivileged user: root would pass the permission bits.
      const proc = spawn(
        'setpriv',
        [
          ...['--reuid=65534', '--regid=65534', '--clear-groups'],
          ...[process.execPath, '--import', 'tsx', main, 'start', '--data-dir', dataDir],
        ],
        {
          cwd: repo,
          env: { ...process.env, WAYSTATION_LOG_LEVEL: 'warn' },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      proc.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      proc.on('exit', (code) => resolve({ code, stderr }));
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(ONE_LINE);
    expect(res.stderr).toContain(`The data directory ${dataDir} cannot be used: permission denied (EACCES)`);
    expect(res.stderr).toContain(`runs as nobody (uid 65534), and ${dataDir} is owned by uid 0`);
  });

  it.runIf(linux)(
    'a stale LOCK naming pid 1 is taken over; a second gateway refuses, naming the first one’s pid',
    async () => {
      const config = await writeConfig({});
      const dataDir = join(dirname(config), 'data');
      await mkdir(dataDir);
      const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      const ns = await readlink('/proc/self/ns/pid');
      // pid 1 runs, but is not the process that wrote this LOCK (another start time): a crash and a reuse.
      await writeFile(
        join(dataDir, 'LOCK'),
        `1\nboot_id=${boot}\nstart_time=1234567890\npid_ns=${ns}\nhost=${hostname()}\n`,
      );
      const first = await startCli(['--config', config]);
      procs.push(first.proc);
      expect(first.logs.join('\n')).toMatch(
        /took over the stale lock .*LOCK of process 1: pid 1 now belongs/,
      );
      expect((await readFile(join(dataDir, 'LOCK'), 'utf8')).split('\n')[0]).toBe(String(first.proc.pid));

      const second = await cli(['start', '--config', config]);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(ONE_LINE);
      expect(second.stderr).toContain(
        `waystation: The data directory ${dataDir} is in use by process ${first.proc.pid}. Stop that process, or point this one at another dataDir. (WS_ERR_DATA_DIR_LOCKED)`,
      );
    },
    60_000,
  );

  it.runIf(linux && root)(
    'SIGTERM on a full disk exits 0, warns what it could not save, removes LOCK and leaves no temporary file',
    async () => {
      const mnt = join(await tempDir('ws-tmpfs-'), 'mnt');
      await mkdir(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
      mounts.push(mnt);
      const dataDir = join(mnt, 'data');
      const config = await writeConfig({
        storage: { segmentBytes: '64KiB' },
        targets: { t: { type: 'null' } },
        routes: { r: { streams: ['s'], target: 't' } },
      });
      const gw = await startCli(['--config', config, '--data-dir', dataDir]);
      procs.push(gw.proc);
      const publish = (body: string) =>
        fetch(`${gw.url}/v1/streams/s/messages`, { method: 'POST', body }).then((r) => r.status);
      for (let i = 0; i < 5; i++) expect(await publish(`m${i}`)).toBe(202);

      await fill(join(mnt, 'filler'));
      // The segment's last page may still have room for a few: publish until the disk refuses.
      let status = 202;
      for (let i = 0; i < 100 && status === 202; i++) status = await publish('x'.repeat(1000));
      expect(status).toBe(507);

      const code = exitOf(gw.proc);
      gw.proc.kill('SIGTERM');
      expect(await code).toBe(0);
      const logs = gw.logs.join('\n');
      expect(logs).toMatch(/"level":40[^\n]*could not save the segment index [^\n]*at close \(ENOSPC\)/);
      expect(logs).toContain('shutdown complete');
      const files = await readdir(dataDir, { recursive: true });
      expect(files).not.toContain('LOCK');
      expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    },
    60_000,
  );
});

/** Writes `path` until the filesystem is full. */
async function fill(path: string): Promise<void> {
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) await handle.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
}
