export { readAtomicFile, readAtomicJson, writeAtomicFile, writeAtomicJson } from './atomic-file.js';
export { nodeFileSystem, type OpenMode, type StorageFile, type StorageFileSystem } from './file-system.js';
export { StateFile } from './json-state-file.js';
export {
  type AppendInput,
  type AppendResult,
  type DeleteResult,
  Log,
  type LogRecord,
  type LogStats,
  type ReadOptions,
  type SegmentInfo,
} from './log.js';
export {
  type CorruptionReport,
  type FsyncPolicy,
  type LogOptions,
  resolveLogOptions,
  type StorageWarning,
} from './options.js';
