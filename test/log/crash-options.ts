import type { LogOptions } from '../../src/log/index.js';

/** Small segments and a low blob threshold, so every crash round rolls segments and writes blobs. */
export const CRASH_LOG_OPTIONS: LogOptions = {
  fsync: 'always',
  segmentBytes: 64 * 1024,
  blobThreshold: 8 * 1024,
};
