import { InvalidOptionsError } from '../errors.js';
import { nodeFileSystem, type StorageFileSystem } from './file-system.js';
import { MAX_FRAME_BYTES } from './format.js';

export const FsyncPolicies = ['always', 'interval', 'never'] as const;
export type FsyncPolicy = (typeof FsyncPolicies)[number];

export interface LogOptions {
  /**
   * When an append counts as durable.
   * - `always` (default): the append resolves after fdatasync; concurrent appends share one
   *   fdatasync (group commit). Nothing acknowledged is lost on power failure.
   * - `interval`: resolves after the write; fdatasync runs every `fsyncIntervalMs`. A power failure
   *   loses at most that window of acknowledged records (a process crash loses nothing).
   * - `never`: leaves flushing to the OS; a power failure can lose anything not yet flushed.
   */
  fsync?: FsyncPolicy;
  /** fdatasync period for `fsync: interval`, in ms. Default 200. */
  fsyncIntervalMs?: number;
  /** A segment file rolls before it would grow past this many bytes. Default 64 MiB, at most 1 GiB. */
  segmentBytes?: number;
  /** Payloads larger than this go to a side file written and read as a stream. Default 1 MiB. */
  blobThreshold?: number;
  /** A write or fsync stalled this long fails the append (SFC WriteTimeout), in ms. Default 10 000. */
  writeTimeoutMs?: number;
  /** Upper bound of one group-commit write, in bytes; larger batches are split. Default 8 MiB. */
  maxWriteBytes?: number;
  /** Segment files kept open for reading at once. Default 32. */
  maxOpenSegments?: number;
  /** Called after each committed group write (and its fdatasync with `always`), in seconds. */
  onCommit?: (seconds: number) => void;
  /** Called for each record found damaged (recovery, or a read). */
  onCorruption?: (report: CorruptionReport) => void;
  /** Called for what could not be done but fails nothing (an index cache not saved). Log at warn. */
  onWarning?: (warning: StorageWarning) => void;
  /** The file layer; tests inject faults through it. Default: node:fs. */
  fileSystem?: StorageFileSystem;
  /** Clock for record timestamps, ms. Default Date.now. */
  now?: () => number;
}

export interface CorruptionReport {
  /** Segment or blob file. */
  file: string;
  /** Byte offset in the file where the damage starts. */
  offset: number;
  /** Sequence numbers lost, when known. */
  seqs: readonly number[];
  reason: string;
}

/** Something that could not be saved or done, with no data lost (e.g. ENOSPC writing a cache). */
export interface StorageWarning {
  /** The file concerned. */
  file: string;
  message: string;
  /** The operating system's error, if any. */
  cause?: unknown;
}

export type ResolvedLogOptions = Readonly<Required<LogOptions>>;

const MiB = 1024 * 1024;

export function resolveLogOptions(options: LogOptions = {}): ResolvedLogOptions {
  const resolved = {
    fsync: options.fsync ?? 'always',
    fsyncIntervalMs: options.fsyncIntervalMs ?? 200,
    segmentBytes: options.segmentBytes ?? 64 * MiB,
    blobThreshold: options.blobThreshold ?? MiB,
    writeTimeoutMs: options.writeTimeoutMs ?? 10_000,
    maxWriteBytes: options.maxWriteBytes ?? 8 * MiB,
    maxOpenSegments: options.maxOpenSegments ?? 32,
    onCorruption: options.onCorruption ?? (() => {}),
    onCommit: options.onCommit ?? (() => {}),
    onWarning: options.onWarning ?? (() => {}),
    fileSystem: options.fileSystem ?? nodeFileSystem,
    now: options.now ?? Date.now,
  };
  if (!FsyncPolicies.includes(resolved.fsync)) {
    throw new InvalidOptionsError(
      `storage.fsync must be one of ${FsyncPolicies.join(', ')}, got "${resolved.fsync}".`,
    );
  }
  requireInteger('storage.fsyncIntervalMs', resolved.fsyncIntervalMs, 1, 3_600_000);
  requireInteger('storage.segmentBytes', resolved.segmentBytes, 4096, 1024 * MiB);
  requireInteger('storage.blobThreshold', resolved.blobThreshold, 0, Math.min(64 * MiB, MAX_FRAME_BYTES));
  requireInteger('storage.writeTimeoutMs', resolved.writeTimeoutMs, 1, 3_600_000);
  requireInteger('storage.maxWriteBytes', resolved.maxWriteBytes, 4096, 1024 * MiB);
  requireInteger('storage.maxOpenSegments', resolved.maxOpenSegments, 2, 65_536);
  return Object.freeze(resolved);
}

function requireInteger(path: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(`${path} must be an integer from ${min} to ${max}, got ${value}.`);
  }
}
