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
  StreamUnknown: 'WS_ERR_STREAM_UNKNOWN',
  StreamInUse: 'WS_ERR_STREAM_IN_USE',
  MqttTopicUnknown: 'WS_ERR_MQTT_TOPIC_UNKNOWN',
  MqttTopicConflict: 'WS_ERR_MQTT_TOPIC_CONFLICT',
  RouteUnknown: 'WS_ERR_ROUTE_UNKNOWN',
  RouteFull: 'WS_ERR_ROUTE_FULL',
  MessageUnknown: 'WS_ERR_MESSAGE_UNKNOWN',
  DataDirLocked: 'WS_ERR_DATA_DIR_LOCKED',
  ConfigInvalid: 'WS_ERR_CONFIG_INVALID',
  TargetUnknownType: 'WS_ERR_TARGET_UNKNOWN_TYPE',
  TargetModuleInvalid: 'WS_ERR_TARGET_MODULE_INVALID',
  WaitTimeout: 'WS_ERR_WAIT_TIMEOUT',
  ShuttingDown: 'WS_ERR_SHUTTING_DOWN',
  AuthRequired: 'WS_ERR_AUTH_REQUIRED',
  AuthForbidden: 'WS_ERR_AUTH_FORBIDDEN',
  HttpBadRequest: 'WS_ERR_HTTP_BAD_REQUEST',
  HttpPayloadTooLarge: 'WS_ERR_HTTP_PAYLOAD_TOO_LARGE',
  HttpNotFound: 'WS_ERR_HTTP_NOT_FOUND',
  Internal: 'WS_ERR_INTERNAL',
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

export class UnknownStreamError extends WaystationError {
  constructor(stream: string) {
    super(
      ErrorCodes.StreamUnknown,
      `Stream "${stream}" does not exist. Declare it under "streams" (or in a route's "streams") in the configuration.`,
      { httpStatus: 404 },
    );
  }
}

export class StreamInUseError extends WaystationError {
  constructor(stream: string, routes: readonly string[]) {
    super(
      ErrorCodes.StreamInUse,
      `Stream "${stream}" is read by route(s) ${routes.join(', ')}; it cannot be removed while configured routes read it. Remove it from those routes' "streams" first.`,
      { httpStatus: 409 },
    );
  }
}

export class UnknownMqttTopicError extends WaystationError {
  constructor(topic: string) {
    super(
      ErrorCodes.MqttTopicUnknown,
      `There is no store-and-forward topic "${topic}"; list them with \`waystation topics list\`.`,
      { httpStatus: 404 },
    );
  }
}

/** A store-and-forward topic cannot be created or removed as asked; the message says why. */
export class MqttTopicConflictError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.MqttTopicConflict, message, { httpStatus: 409 });
  }
}

export class UnknownRouteError extends WaystationError {
  constructor(route: string) {
    super(
      ErrorCodes.RouteUnknown,
      `Route "${route}" does not exist; list routes with \`waystation routes\`.`,
      {
        httpStatus: 404,
      },
    );
  }
}

export class UnknownMessageError extends WaystationError {
  constructor(id: string) {
    super(
      ErrorCodes.MessageUnknown,
      `Message "${id}" is not known here: the id is malformed, belongs to another data directory, or its stream's retention removed it.`,
      { httpStatus: 404 },
    );
  }
}

/** A route with `onFull: reject-new` is at its retention limit: the publish is refused, nothing was stored. */
export class RouteFullError extends WaystationError {
  constructor(route: string, stream: string, limit: string) {
    super(
      ErrorCodes.RouteFull,
      `Route "${route}" is full (${limit}) and its onFull policy is reject-new; the message for stream "${stream}" was not stored. Wait for the route to drain, purge it, or raise its retention limits.`,
      { httpStatus: 507 },
    );
  }
}

export class DataDirLockedError extends WaystationError {
  constructor(dataDir: string, pid: number) {
    super(
      ErrorCodes.DataDirLocked,
      `The data directory ${dataDir} is in use by process ${pid}. Stop that process, or point this one at another dataDir.`,
    );
  }
}

export interface ConfigIssue {
  /** Dotted path of the offending key, e.g. "routes.orders-to-crm.target". */
  path: string;
  message: string;
}

export class ConfigError extends WaystationError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(
      ErrorCodes.ConfigInvalid,
      `Invalid configuration:\n${issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n')}`,
      { httpStatus: 400 },
    );
    this.issues = issues;
  }
}

export class UnknownTargetTypeError extends WaystationError {
  constructor(target: string, type: string, known: readonly string[]) {
    super(
      ErrorCodes.TargetUnknownType,
      `targets.${target}.type "${type}" is not a target type this build knows; use one of ${known.join(', ')}.`,
    );
  }
}

export class TargetModuleError extends WaystationError {
  constructor(target: string, message: string, cause?: unknown) {
    super(ErrorCodes.TargetModuleInvalid, `targets.${target}: ${message}`, { cause });
  }
}

export class WaitTimeoutError extends WaystationError {
  constructor(id: string, timeoutMs: number) {
    super(
      ErrorCodes.WaitTimeout,
      `Message ${id} was not delivered within ${timeoutMs} ms; it is still pending.`,
      {
        httpStatus: 408,
      },
    );
  }
}

export class ShuttingDownError extends WaystationError {
  constructor() {
    super(
      ErrorCodes.ShuttingDown,
      'Waystation is shutting down and accepts no new messages; retry against the restarted instance.',
      {
        httpStatus: 503,
      },
    );
  }
}

export class BadRequestError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.HttpBadRequest, message, { httpStatus: 400 });
  }
}

export class PayloadTooLargeError extends WaystationError {
  constructor(limit: number, what = 'The message body') {
    super(
      ErrorCodes.HttpPayloadTooLarge,
      `${what} is larger than ${limit} bytes (http.maxBodyBytes / http.maxBatchBytes); nothing was stored.`,
      { httpStatus: 413 },
    );
  }
}
