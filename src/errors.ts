/**
 * Every error Waystation raises on purpose extends `WaystationError` and carries a stable
 * `code` (`WS_ERR_<AREA>_<WHAT>`), documented in docs/errors.md. Codes are never reused or
 * renamed: scripts and alerting match on them. `httpStatus` is what the HTTP API answers.
 *
 * This module is a leaf: every layer may import it, it imports nothing of ours.
 */

export const ErrorCodes = {
  StorageFull: 'WS_ERR_STORAGE_FULL',
  StorageIO: 'WS_ERR_STORAGE_IO',
  StorageTimeout: 'WS_ERR_STORAGE_TIMEOUT',
  StorageCorruptState: 'WS_ERR_STORAGE_CORRUPT_STATE',
  LogClosed: 'WS_ERR_LOG_CLOSED',
  LogRecordTooLarge: 'WS_ERR_LOG_RECORD_TOO_LARGE',
  LogInvalidOptions: 'WS_ERR_LOG_INVALID_OPTIONS',
  LogInvalidArgument: 'WS_ERR_LOG_INVALID_ARGUMENT',
  BlobCorrupt: 'WS_ERR_LOG_BLOB_CORRUPT',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface WaystationErrorOptions {
  cause?: unknown;
  httpStatus?: number;
}

export class WaystationError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;

  constructor(code: ErrorCode, message: string, options: WaystationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.httpStatus = options.httpStatus ?? 500;
  }
}

/**
 * The disk (or a configured limit) has no room. Nothing of the failed append was stored;
 * `unstored` hands the caller back what it asked to store so it can retry or refuse upstream.
 */
export class StorageFullError<T = unknown> extends WaystationError {
  readonly unstored: readonly T[];
  constructor(message: string, unstored: readonly T[] = [], cause?: unknown) {
    super(ErrorCodes.StorageFull, message, { cause, httpStatus: 507 });
    this.unstored = unstored;
  }
}

/** The operating system reported an I/O error. Nothing of the failed append was stored. */
export class StorageIOError<T = unknown> extends WaystationError {
  readonly unstored: readonly T[];
  constructor(message: string, unstored: readonly T[] = [], cause?: unknown) {
    super(ErrorCodes.StorageIO, message, { cause, httpStatus: 500 });
    this.unstored = unstored;
  }
}

/** A write or fsync took longer than `storage.writeTimeout` (SFC WriteTimeout). Nothing was stored. */
export class StorageTimeoutError<T = unknown> extends WaystationError {
  readonly unstored: readonly T[];
  constructor(message: string, unstored: readonly T[] = []) {
    super(ErrorCodes.StorageTimeout, message, { httpStatus: 503 });
    this.unstored = unstored;
  }
}

/** A small persisted state file (cursor, route state, log metadata) failed its checksum. */
export class CorruptStateError extends WaystationError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCodes.StorageCorruptState, message, { cause });
  }
}

export class LogClosedError extends WaystationError {
  constructor(dir: string) {
    super(ErrorCodes.LogClosed, `The log at ${dir} is closed; open it again before appending or reading.`, {
      httpStatus: 503,
    });
  }
}

export class RecordTooLargeError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.LogRecordTooLarge, message, { httpStatus: 413 });
  }
}

export class InvalidOptionsError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.LogInvalidOptions, message);
  }
}

export class InvalidArgumentError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.LogInvalidArgument, message, { httpStatus: 400 });
  }
}

/** A large payload's side file does not match the size or checksum its record promised. */
export class BlobCorruptError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.BlobCorrupt, message);
  }
}
