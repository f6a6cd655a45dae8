/**
 * The data directory's creation and its LOCK: one process per directory.
 *
 * Creating the directory walks up to the first existing ancestor and creates each level itself,
 * so the operating system's answer is the real one (Node's recursive mkdir reports ENOENT on a
 * read-only filesystem). Every errno met while creating, locking or opening the directory
 * becomes a `DataDirUnusableError` naming the path, the cause and what to do.
 *
 * LOCK is a small text file, DO NOT REORDER (the first line stays the bare pid, as before):
 *
 *   <pid>
 *   boot_id=<this boot of the machine: /proc/sys/kernel/random/boot_id>
 *   start_time=<the holder's start, clock ticks since boot: field 22 of /proc/<pid>/stat>
 *   pid_ns=<the holder's PID namespace: readlink /proc/<pid>/ns/pid>
 *   host=<hostname>
 *
 * A pid alone cannot tell a live holder from a crash whose pid was reused (after a reboot, in a
 * container where the gateway is pid 1 again): a lock is held only while a process with that pid
 * AND that start time runs in the same boot. A holder this process cannot see (another PID
 * namespace or host, or a missing /proc) refreshes the file's mtime every 10 s; such a lock is
 * stale once 30 s old. A LOCK with a pid only (older versions, or written without /proc) is held
 * while that pid is alive.
 *
 * Taking the lock is atomic: the content is written to `LOCK.<pid>.tmp` and hard-linked to
 * `LOCK` (fails if it exists). A stale LOCK is renamed aside, and removed only if it is still the
 * one judged stale (a racing starter's fresh LOCK is linked back); then the link is retried. Of
 * two gateways starting together, one gets the lock and the other refuses.
 */
import { lstatSync, type Stats, statSync } from 'node:fs';
import { link, mkdir, open, readFile, readlink, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { DataDirLockedError, DataDirUnusableError, WaystationError } from '../errors.js';

/** How often a holder refreshes LOCK's mtime, and the age after which an unverifiable LOCK is stale. */
export const LOCK_REFRESH_MS = 10_000;
export const LOCK_STALE_MS = 30_000;

export interface DataDirLockOptions {
  /** Where procfs is mounted. Default /proc; tests point it elsewhere to drop it. */
  procDir?: string;
  /** Called when a stale LOCK was taken over, with why it was stale. */
  onTakeover?: (message: string) => void;
  now?: () => number;
}

interface LockInfo {
  pid: number;
  bootId?: string | undefined;
  startTime?: string | undefined;
  pidNs?: string | undefined;
  host?: string | undefined;
}

type Verdict = { kind: 'ours' } | { kind: 'live'; detail?: string } | { kind: 'stale'; why: string };

export class DataDirLock {
  private readonly refresh: NodeJS.Timeout;

  /** Use DataDirLock.acquire. */
  constructor(
    readonly path: string,
    private readonly content: string,
  ) {
    this.refresh = setInterval(() => {
      const now = new Date();
      utimes(path, now, now).catch(() => {});
    }, LOCK_REFRESH_MS);
    this.refresh.unref();
  }

  /** Creates `dataDir` if needed and locks it; throws DataDirLockedError or DataDirUnusableError. */
  static async acquire(dataDir: string, options: DataDirLockOptions = {}): Promise<DataDirLock> {
    try {
      return await acquire(dataDir, options);
    } catch (err) {
      throw dataDirError(dataDir, err);
    }
  }

  /** Stops refreshing and removes LOCK if it is still this holder's. */
  async release(): Promise<void> {
    clearInterval(this.refresh);
    const text = await readFile(this.path, 'utf8').catch(() => undefined);
    if (text === this.content) await rm(this.path, { force: true });
  }
}

async function acquire(dataDir: string, options: DataDirLockOptions): Promise<DataDirLock> {
  const procDir = options.procDir ?? '/proc';
  const now = options.now ?? Date.now;
  await makeDirectory(dataDir);
  const self = await describeProcess(procDir, process.pid);
  const content = formatLock(self);
  const path = join(dataDir, 'LOCK');
  const tmp = join(dataDir, `LOCK.${process.pid}.tmp`);
  try {
    await writeFile(tmp, content);
    for (let attempt = 0; attempt < 8; attempt++) {
      if (await createLink(tmp, path, content)) return new DataDirLock(path, content);
      const held = await readHeld(path, now);
      if (!held) continue; // removed meanwhile: try again
      const verdict = await judge(held.info, self, held.ageMs, procDir);
      if (verdict.kind === 'live') throw new DataDirLockedError(dataDir, held.info.pid, verdict.detail);
      if (verdict.kind === 'ours') {
        // This very process holds it (a store reopened in-process): keep it, as before.
        await writeFile(path, content);
        return new DataDirLock(path, content);
      }
      if (await breakStale(path, held.text)) {
        options.onTakeover?.(`took over the stale lock ${path} of process ${held.info.pid}: ${verdict.why}`);
      }
    }
    throw new DataDirLockedError(dataDir, 0, 'other processes kept taking the lock; try again');
  } finally {
    await rm(tmp, { force: true }).catch(() => {});
  }
}

/** Links `tmp` to `path`; false if `path` exists. Without hard links: an exclusive create. */
async function createLink(tmp: string, path: string, content: string): Promise<boolean> {
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  }
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'wx');
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return true;
}

/** Moves a stale LOCK aside and deletes it if it is still what was judged; true if it was. */
async function breakStale(path: string, judged: string): Promise<boolean> {
  const aside = `${path}.stale.${process.pid}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false; // another starter broke it first
    throw err;
  }
  const text = await readFile(aside, 'utf8').catch(() => undefined);
  if (text !== judged) {
    // A racing starter's fresh lock: put it back (unless a third one got in meanwhile).
    await link(aside, path).catch(() => {});
  }
  await rm(aside, { force: true });
  return text === judged;
}

async function readHeld(
  path: string,
  now: () => number,
): Promise<{ text: string; info: LockInfo; ageMs: number } | undefined> {
  let text: string;
  let mtimeMs: number;
  try {
    text = await readFile(path, 'utf8');
    mtimeMs = (await stat(path)).mtimeMs;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  return { text, info: parseLock(text), ageMs: now() - mtimeMs };
}

async function judge(held: LockInfo, self: LockInfo, ageMs: number, procDir: string): Promise<Verdict> {
  if (!Number.isInteger(held.pid) || held.pid <= 0)
    return { kind: 'stale', why: 'its content is not a lock' };
  const legacy = held.startTime === undefined && held.bootId === undefined;
  if (legacy) {
    if (held.pid === self.pid) return { kind: 'ours' };
    return isAlive(held.pid)
      ? { kind: 'live' }
      : { kind: 'stale', why: `process ${held.pid} is not running` };
  }
  const sameHost = held.host === self.host;
  if (held.bootId && self.bootId && held.bootId !== self.bootId && sameHost) {
    return { kind: 'stale', why: 'it was written before this machine restarted' };
  }
  // Same boot and PID namespace (or neither side could read its namespace): /proc can tell.
  const visible = held.bootId !== undefined && held.bootId === self.bootId && held.pidNs === self.pidNs;
  if (visible) {
    if (held.pid === self.pid && held.startTime === self.startTime) return { kind: 'ours' };
    const running = await startTimeOf(procDir, held.pid);
    if (running === null) return { kind: 'stale', why: `process ${held.pid} is not running` };
    if (running !== undefined) {
      return running === held.startTime
        ? { kind: 'live' }
        : {
            kind: 'stale',
            why: `pid ${held.pid} now belongs to another process (it started at another time)`,
          };
    }
    return isAlive(held.pid)
      ? { kind: 'live' }
      : { kind: 'stale', why: `process ${held.pid} is not running` };
  }
  // Another host or PID namespace, or no /proc: only the holder's refreshes tell it is alive.
  const where = sameHost ? 'in another PID namespace' : `on host ${held.host ?? '(unknown)'}`;
  const age = Math.max(0, Math.round(ageMs / 1000));
  if (ageMs < LOCK_STALE_MS) {
    return {
      kind: 'live',
      detail: `${where}; its lock was refreshed ${age} s ago, and is taken over once ${LOCK_STALE_MS / 1000} s old`,
    };
  }
  return { kind: 'stale', why: `its holder (${where}) has not refreshed it for ${age} s` };
}

async function describeProcess(procDir: string, pid: number): Promise<LockInfo> {
  return {
    pid,
    bootId:
      (await readFile(join(procDir, 'sys/kernel/random/boot_id'), 'utf8').catch(() => ''))
        .trim()
        .replace(/\s+/g, '') || undefined,
    startTime: (await startTimeOf(procDir, pid)) ?? undefined,
    pidNs: await readlink(join(procDir, String(pid), 'ns/pid')).catch(() => undefined),
    host: hostname().replace(/\s+/g, ''),
  };
}

/** Field 22 of /proc/<pid>/stat; null if no such process; undefined if procfs cannot tell. */
async function startTimeOf(procDir: string, pid: number): Promise<string | null | undefined> {
  let text: string;
  try {
    text = await readFile(join(procDir, String(pid), 'stat'), 'utf8');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ESRCH') return undefined;
    // No such process, if procfs is there at all.
    const mounted = await stat(join(procDir, String(process.pid), 'stat')).then(
      () => true,
      () => false,
    );
    return mounted ? null : undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // A zombie (exited, not yet reaped by its parent) holds nothing any more.
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  return fields[22 - 3] || undefined;
}

function formatLock(info: LockInfo): string {
  let text = `${info.pid}\n`;
  if (info.bootId) text += `boot_id=${info.bootId}\n`;
  if (info.startTime) text += `start_time=${info.startTime}\n`;
  if (info.pidNs) text += `pid_ns=${info.pidNs}\n`;
  if (info.host) text += `host=${info.host}\n`;
  return text;
}

function parseLock(text: string): LockInfo {
  const [first = '', ...rest] = text.split('\n');
  const fields = new Map<string, string>();
  for (const line of rest) {
    const at = line.indexOf('=');
    if (at > 0) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  const pid = /^\s*\d+\s*$/.test(first) ? Number(first) : Number.NaN;
  return {
    pid,
    bootId: fields.get('boot_id'),
    startTime: fields.get('start_time'),
    pidNs: fields.get('pid_ns'),
    host: fields.get('host'),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** mkdir -p, one level at a time, so the error is the operating system's real one. */
async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw err;
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
  }
  await makeDirectory(dirname(dir));
  try {
    await mkdir(dir);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST' || !(await stat(dir)).isDirectory()) throw err;
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * An operating-system error met while opening the data directory, as a DataDirUnusableError that
 * names the path, the cause and what to do. Waystation errors and non-errno errors pass through.
 */
export function dataDirError(dataDir: string, err: unknown): unknown {
  if (err instanceof WaystationError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = errnoCode(err);
  if (!code || !/^E[A-Z0-9]+$/.test(code)) return err;
  const path = e.path ?? dataDir;
  const op = e.syscall ? `${e.syscall} ${path}` : path;
  const elsewhere = 'or point dataDir (--data-dir) at another directory';
  let detail: string;
  switch (code) {
    case 'EEXIST':
    case 'ENOTDIR': {
      const file = fileOnTheWay(path);
      detail = file
        ? file === dataDir
          ? `${dataDir} is a file, not a directory (${code}). Move the file away, ${elsewhere}`
          : `${dataDir} lies under ${file}, which is a file, not a directory (${code}). Move the file away, ${elsewhere}`
        : `${op}: ${code}. Check the path, ${elsewhere}`;
      break;
    }
    case 'EACCES':
      detail = `permission denied (EACCES) to ${op}; this process runs as ${whoAmI()}${ownerOf(path)}. Give that user write access (chown/chmod), run as the directory's owner, ${elsewhere}`;
      break;
    case 'EPERM':
      detail = `operation not permitted (EPERM) to ${op}: the directory or a file in it is probably immutable or append-only (check with lsattr -d; clear with chattr -i), or a security policy forbids it. Clear the attribute, ${elsewhere}`;
      break;
    case 'EROFS':
      detail = `${path} is on a read-only filesystem (EROFS; ${op}). Remount it read-write, ${elsewhere}`;
      break;
    case 'ENOSPC':
    case 'EDQUOT':
      detail = `no space left on its filesystem (${code}) to ${op}. Free space${code === 'EDQUOT' ? ' or raise the quota' : ''}, ${elsewhere}`;
      break;
    case 'ELOOP':
      detail = `too many symbolic links (ELOOP) in ${path}. Fix the link, ${elsewhere}`;
      break;
    case 'ENAMETOOLONG':
      detail = `the path is too long (ENAMETOOLONG): ${path}. Use a shorter one`;
      break;
    case 'EMFILE':
    case 'ENFILE':
      detail = `too many open files (${code}) to ${op}. Raise the open-files limit (ulimit -n / LimitNOFILE)`;
      break;
    case 'EIO':
      detail = `an I/O error (EIO) to ${op}. Check the disk and the system log`;
      break;
    default:
      detail = `${op} failed (${code}: ${e.message}). Check the directory, ${elsewhere}`;
  }
  return new DataDirUnusableError(`The data directory ${dataDir} cannot be used: ${detail}.`, err);
}

/** The path itself or its nearest ancestor that exists and is not a directory. */
function fileOnTheWay(path: string): string | undefined {
  for (let p = path; ; p = dirname(p)) {
    const s = lstatSyncSafe(p);
    if (s && !s.isDirectory() && !s.isSymbolicLink()) return p;
    if (s?.isSymbolicLink()) {
      const target = statSyncSafe(p);
      if (target && !target.isDirectory()) return p;
    }
    if (dirname(p) === p) return undefined;
  }
}

function whoAmI(): string {
  const uid = process.getuid?.();
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    name = undefined;
  }
  return uid === undefined ? (name ?? 'this user') : `${name ?? 'uid'} (uid ${uid})`;
}

/** ", which is owned by uid N" when the nearest existing part of `path` belongs to someone else. */
function ownerOf(path: string): string {
  const uid = process.getuid?.();
  for (let p = path; ; p = dirname(p)) {
    const s = statSyncSafe(p);
    if (s) return uid !== undefined && s.uid !== uid ? `, and ${p} is owned by uid ${s.uid}` : '';
    if (dirname(p) === p) return '';
  }
}

function lstatSyncSafe(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function statSyncSafe(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
