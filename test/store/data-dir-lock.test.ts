import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { StorageWarning } from '../../src/log/index.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../support/tmp.js';

const linux = process.platform === 'linux';
const bootId = linux ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : '';
const startOf = (pid: number | string): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
};

function lockText(fields: {
  pid: number;
  boot?: string;
  start?: string;
  ns?: string;
  host?: string;
}): string {
  let text = `${fields.pid}\n`;
  if (fields.boot) text += `boot_id=${fields.boot}\n`;
  if (fields.start) text += `start_time=${fields.start}\n`;
  if (fields.ns) text += `pid_ns=${fields.ns}\n`;
  text += `host=${fields.host ?? hostname()}\n`;
  return text;
}

async function open(dataDir: string, extra: { procDir?: string } = {}) {
  const warnings: StorageWarning[] = [];
  const store = await Store.open({
    dataDir,
    streams: ['s'],
    routes: [],
    onWarning: (w) => warnings.push(w),
    ...extra,
  });
  return { store, warnings };
}

/** A pid no process has: above any pid_max. */
const DEAD_PID = 99_999_999;

describe.runIf(linux)('the data directory LOCK', () => {
  it('takes over a LOCK naming pid 1 with another start time (the pid was reused)', async () => {
    const dir = await tempDir();
    const ns = await readlink('/proc/self/ns/pid');
    await writeFile(join(dir, 'LOCK'), lockText({ pid: 1, boot: bootId, start: '1234567890', ns }));
    const { store, warnings } = await open(dir);
    expect(warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(
        /took over the stale lock .*LOCK of process 1: pid 1 now belongs to another process/,
      ),
    ]);
    const lock = await readFile(join(dir, 'LOCK'), 'utf8');
    expect(lock).toContain(`${process.pid}\nboot_id=${bootId}\nstart_time=${startOf('self')}\n`);
    await store.close();
    expect(await readdir(dir)).not.toContain('LOCK');
  });

  it('takes over a LOCK written before the machine restarted', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'LOCK'), lockText({ pid: 1, boot: 'another-boot', start: startOf(1) }));
    const { store, warnings } = await open(dir);
    expect(warnings[0]?.message).toMatch(/written before this machine restarted/);
    await store.close();
  });

  it('refuses a LOCK whose process still runs, naming its pid', async () => {
    const dir = await tempDir();
    const ns = await readlink('/proc/self/ns/pid');
    await writeFile(join(dir, 'LOCK'), lockText({ pid: 1, boot: bootId, start: startOf(1), ns }));
    await expect(open(dir)).rejects.toMatchObject({
      code: 'WS_ERR_DATA_DIR_LOCKED',
      pid: 1,
      message: expect.stringContaining('is in use by process 1.'),
    });
    // The holder's LOCK is left alone.
    expect(await readFile(join(dir, 'LOCK'), 'utf8')).toContain(`start_time=${startOf(1)}`);
  });

  it('judges a holder in another PID namespace by how recently it refreshed the LOCK', async () => {
    const dir = await tempDir();
    const lock = join(dir, 'LOCK');
    await writeFile(lock, lockText({ pid: 1, boot: bootId, start: '5', ns: 'pid:[1]' }));
    await expect(open(dir)).rejects.toMatchObject({
      code: 'WS_ERR_DATA_DIR_LOCKED',
      message: expect.stringMatching(
        /process 1 \(in another PID namespace; its lock was refreshed \d+ s ago/,
      ),
    });
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(lock, minuteAgo, minuteAgo);
    const { store, warnings } = await open(dir);
    expect(warnings[0]?.message).toMatch(/has not refreshed it for 60 s/);
    await store.close();
  });

  it('without /proc, falls back to whether the pid is alive (also for LOCKs holding a pid only)', async () => {
    const dir = await tempDir();
    const procDir = join(dir, 'no-proc');
    await writeFile(join(dir, 'LOCK'), '1\n');
    await expect(open(dir, { procDir })).rejects.toMatchObject({ code: 'WS_ERR_DATA_DIR_LOCKED', pid: 1 });
    await expect(open(dir)).rejects.toMatchObject({ code: 'WS_ERR_DATA_DIR_LOCKED', pid: 1 });
    await writeFile(join(dir, 'LOCK'), `${DEAD_PID}\n`);
    const { store, warnings } = await open(dir, { procDir });
    expect(warnings[0]?.message).toMatch(`process ${DEAD_PID} is not running`);
    // Written without /proc: a pid (and host) only, judged the same way by the next start.
    expect(await readFile(join(dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\nhost=${hostname()}\n`);
    await store.close();
  });

  it('a LOCK of this very process (a store reopened in-process) is kept, as before', async () => {
    const dir = await tempDir();
    const first = await open(dir);
    const second = await open(dir);
    await second.store.close();
    await first.store.close();
  });

  describe('processes starting together', () => {
    const children: ChildProcess[] = [];
    afterEach(() => {
      for (const c of children.splice(0)) c.kill('SIGKILL');
    });

    it('of four processes taking the LOCK at once (over a stale one), exactly one gets it', async () => {
      const dir = await tempDir();
      const ns = await readlink('/proc/self/ns/pid');
      await writeFile(join(dir, 'LOCK'), lockText({ pid: DEAD_PID, boot: bootId, start: '7', ns }));
      const child = fileURLToPath(new URL('./lock-child.ts', import.meta.url));
      const outcomes = await Promise.all(
        [0, 1, 2, 3].map(
          () =>
            new Promise<string>((resolve) => {
              const proc = spawn(process.execPath, ['--import', 'tsx', child, dir], {
                stdio: ['pipe', 'pipe', 'inherit'],
              });
              children.push(proc);
              createInterface({ input: proc.stdout! }).once('line', resolve);
              proc.once('exit', (code) => resolve(`exited with ${code}`));
            }),
        ),
      );
      expect(outcomes.filter((o) => o === 'locked').length).toBe(1);
      expect(outcomes.filter((o) => o.startsWith('WS_ERR_DATA_DIR_LOCKED')).length).toBe(3);
      // The holder's pid is in LOCK, and the refusals name it.
      const holder = Number((await readFile(join(dir, 'LOCK'), 'utf8')).split('\n')[0]);
      const winner = children.find((c) => c.pid === holder);
      expect(winner).toBeDefined();
      for (const o of outcomes) if (o !== 'locked') expect(o).toContain(`process ${holder}`);
      expect((await readdir(dir)).sort()).toEqual(['LOCK']);
    }, 30_000);
  });
});

describe('a data directory that cannot be used', () => {
  it('is a file: names the path and says what to do', async () => {
    const dir = await tempDir();
    const file = join(dir, 'data');
    await writeFile(file, 'not a directory');
    await expect(open(file)).rejects.toMatchObject({
      code: 'WS_ERR_DATA_DIR_UNUSABLE',
      message: `The data directory ${file} cannot be used: ${file} is a file, not a directory (EEXIST). Move the file away, or point dataDir (--data-dir) at another directory.`,
    });
  });

  it('lies under a file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    const dataDir = join(file, 'a', 'data');
    await expect(open(dataDir)).rejects.toMatchObject({
      code: 'WS_ERR_DATA_DIR_UNUSABLE',
      message: expect.stringContaining(
        `${dataDir} lies under ${file}, which is a file, not a directory (ENOTDIR)`,
      ),
    });
  });

  it('holds a file where a stream directory belongs (found after the LOCK)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'streams'), 'x');
    await expect(open(dir)).rejects.toMatchObject({
      code: 'WS_ERR_DATA_DIR_UNUSABLE',
      message: expect.stringContaining(`lies under ${join(dir, 'streams')}, which is a file`),
    });
    // The LOCK taken before the failure is released.
    expect(await readdir(dir)).toEqual(['streams']);
  });

  describe.runIf(linux && process.getuid?.() === 0)('on a small tmpfs (root only)', () => {
    const mounts: string[] = [];
    afterEach(() => {
      for (const m of mounts.splice(0)) {
        try {
          execFileSync('chattr', ['-R', '-i', m], { stdio: 'ignore' });
        } catch {}
        execFileSync('umount', ['-l', m]);
      }
    });
    async function tmpfs(options: string): Promise<string> {
      const mnt = join(await tempDir('ws-tmpfs-'), 'mnt');
      await mkdir(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mnt]);
      mounts.push(mnt);
      return mnt;
    }

    it('is on a read-only filesystem (EROFS, not the ENOENT of a recursive mkdir)', async () => {
      const mnt = await tmpfs('ro,size=1m');
      const dataDir = join(mnt, 'data');
      await expect(open(dataDir)).rejects.toMatchObject({
        code: 'WS_ERR_DATA_DIR_UNUSABLE',
        message: `The data directory ${dataDir} cannot be used: ${dataDir} is on a read-only filesystem (EROFS; mkdir ${dataDir}). Remount it read-write, or point dataDir (--data-dir) at another directory.`,
      });
    });

    it('is immutable (chattr +i): EPERM', async () => {
      const mnt = await tmpfs('size=1m');
      const dataDir = join(mnt, 'data');
      await mkdir(dataDir);
      execFileSync('chattr', ['+i', dataDir]);
      await expect(open(dataDir)).rejects.toMatchObject({
        code: 'WS_ERR_DATA_DIR_UNUSABLE',
        message: expect.stringMatching(
          /operation not permitted \(EPERM\) to open .*LOCK\.\d+\.tmp: the directory or a file in it is probably immutable or append-only \(check with lsattr -d; clear with chattr -i\)/,
        ),
      });
    });

    it('is on a full disk: ENOSPC', async () => {
      const mnt = await tmpfs('size=256k');
      await fill(join(mnt, 'filler'));
      const dataDir = join(mnt, 'data');
      await expect(open(dataDir)).rejects.toMatchObject({
        code: 'WS_ERR_DATA_DIR_UNUSABLE',
        message: expect.stringContaining('no space left on its filesystem (ENOSPC)'),
      });
      expect(await readdir(dataDir)).toEqual([]);
    });
  });
});

/** Writes `path` until the filesystem is full. */
async function fill(path: string): Promise<void> {
  const { open: openFile } = await import('node:fs/promises');
  const handle = await openFile(path, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) await handle.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
}
